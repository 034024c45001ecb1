//! TPC-C's consistency conditions 1 to 4 (clause 3.3.2), each as one query counting
//! the warehouses or districts that break it: the database is the judge of a run.

use crate::session::Session;

/// One condition and what breaks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub number: u8,
    pub text: &'static str,
    /// Warehouses (1) or districts (2–4) where it does not hold.
    pub violations: i64,
}

impl Condition {
    pub fn holds(&self) -> bool {
        self.violations == 0
    }
}

const CONDITIONS: [(u8, &str, &str); 4] = [
    (
        1,
        "W_YTD = sum(D_YTD) for each warehouse",
        "SELECT COUNT(*) FROM warehouse w WHERE ROUND(w.w_ytd, 2) <> (SELECT ROUND(SUM(d.d_ytd), 2) FROM district d WHERE d.d_w_id = w.w_id)",
    ),
    (
        2,
        "D_NEXT_O_ID - 1 = max(O_ID) = max(NO_O_ID) for each district",
        "SELECT COUNT(*) FROM district d WHERE d.d_next_o_id - 1 <> (SELECT MAX(o.o_id) FROM orders o WHERE o.o_w_id = d.d_w_id AND o.o_d_id = d.d_id) OR d.d_next_o_id - 1 <> COALESCE((SELECT MAX(n.no_o_id) FROM new_order n WHERE n.no_w_id = d.d_w_id AND n.no_d_id = d.d_id), d.d_next_o_id - 1)",
    ),
    (
        3,
        "max(NO_O_ID) - min(NO_O_ID) + 1 = the new-order rows of each district",
        "SELECT COUNT(*) FROM (SELECT MAX(no_o_id) - MIN(no_o_id) + 1 AS span, COUNT(*) AS n FROM new_order GROUP BY no_w_id, no_d_id) t WHERE t.span <> t.n",
    ),
    (
        4,
        "sum(O_OL_CNT) = the order-line rows of each district",
        "SELECT COUNT(*) FROM (SELECT o_w_id AS w, o_d_id AS d, SUM(o_ol_cnt) AS n FROM orders GROUP BY o_w_id, o_d_id) o LEFT JOIN (SELECT ol_w_id AS w, ol_d_id AS d, COUNT(*) AS n FROM order_line GROUP BY ol_w_id, ol_d_id) l ON o.w = l.w AND o.d = l.d WHERE l.n IS NULL OR o.n <> l.n",
    ),
];

/// Check conditions 1 to 4 on the database `session` reaches.
///
/// # Errors
/// A query failed (no TPC-C tables, a lost connection).
pub async fn consistency(session: &mut Session) -> Result<Vec<Condition>, sqlx::Error> {
    let mut out = Vec::with_capacity(CONDITIONS.len());
    for (number, text, sql) in CONDITIONS {
        out.push(Condition {
            number,
            text,
            violations: session.scalar_i64(sql).await?,
        });
    }
    Ok(out)
}

/// New orders the database has taken: the sum of the districts' `D_NEXT_O_ID` (each
/// committed New-Order adds one; rolled-back ones leave it), so its change over a run is
/// the New-Orders committed. (MySQL sums integers as DECIMAL: cast back.)
pub fn next_order_sum(driver: fleetload_common::target::Driver) -> &'static str {
    match driver {
        fleetload_common::target::Driver::MySql => {
            "SELECT CAST(COALESCE(SUM(d_next_o_id), 0) AS SIGNED) FROM district"
        }
        _ => "SELECT COALESCE(SUM(d_next_o_id), 0) FROM district",
    }
}
