//! The five TPC-C transactions (clauses 2.4 to 2.8) on one session.
//!
//! Each runs in one database transaction, retried whole after a deadlock or a
//! serialization failure (counted, up to [`MAX_RETRIES`]). Money is exact: amounts are
//! bound as decimal text and computed by the database (`? * i_price`), so the
//! consistency conditions hold to the cent. Stock rows are locked in item order, which
//! keeps New-Orders from deadlocking each other.

pub use super::sql::Statements;
use crate::session::{classify, Arg, CaptureError, Session};
use fleetload_common::outcome::ErrorClass;
use fleetload_common::rng::Rng;
use fleetload_common::scenario::Operation;
use fleetload_common::target::Driver;
use fleetload_common::tpcc::{last_name, nurand, Constants, CUSTOMERS, DISTRICTS, ITEMS};

/// Retries of one transaction after deadlocks or serialization failures.
pub const MAX_RETRIES: u64 = 10;

/// What one transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxnDone {
    /// It ended in the rollback the specification asks for (New-Order's unused item).
    pub rolled_back: bool,
    /// It touched a warehouse other than its home one (a remote supplier or customer).
    pub remote: bool,
    /// Rows it worked on: order lines entered, orders delivered, lines read.
    pub rows: u64,
    /// Deadlocks and serialization failures retried before it went through.
    pub retries: u64,
}

/// One transaction's inputs, drawn before it starts (a retry repeats the same ones).
#[derive(Debug, Clone)]
enum Input {
    NewOrder {
        d: u64,
        c: u64,
        lines: Vec<(u64, u64, u64)>,
        all_local: bool,
    },
    Payment {
        d: u64,
        c_w: u64,
        c_d: u64,
        customer: Customer,
        amount: String,
    },
    OrderStatus {
        d: u64,
        customer: Customer,
    },
    Delivery {
        carrier: u64,
    },
    StockLevel {
        d: u64,
        threshold: u64,
    },
}

/// A customer by id, or by last name (the middle one of those of that name).
#[derive(Debug, Clone)]
enum Customer {
    Id(u64),
    Last(String),
}

/// Why a transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// The database answered something the specification rules out (a missing row
    /// that the population guarantees): the data is not a TPC-C database as loaded.
    #[error("{0}; run `fleetload prepare --scenario tpcc` again")]
    Data(String),
}

impl TxnError {
    pub fn class(&self) -> ErrorClass {
        match self {
            TxnError::Sql(e) => classify(e),
            TxnError::Data(_) => ErrorClass::OtherSql,
        }
    }
}

impl From<CaptureError> for TxnError {
    fn from(e: CaptureError) -> Self {
        match e {
            CaptureError::Sql(e) => TxnError::Sql(e),
            CaptureError::Column(m) => TxnError::Data(m),
        }
    }
}

/// Where a session's transactions run: its home warehouse, the fleet's warehouses (for
/// remote ones) and the run's NURand constants.
#[derive(Debug, Clone, Copy)]
pub struct Home {
    pub w: u64,
    pub warehouses: u64,
    pub constants: Constants,
}

impl Home {
    /// A warehouse other than home, uniformly (home itself with a single warehouse).
    fn other(&self, rng: &mut Rng) -> u64 {
        if self.warehouses <= 1 {
            return self.w;
        }
        let x = rng.range(1, self.warehouses - 1);
        if x >= self.w {
            x + 1
        } else {
            x
        }
    }

    fn customer(&self, rng: &mut Rng, by_name_percent: u64) -> Customer {
        if rng.range(1, 100) <= by_name_percent {
            Customer::Last(last_name(nurand(rng, 255, 0, 999, self.constants.c_last)))
        } else {
            Customer::Id(nurand(rng, 1023, 1, CUSTOMERS, self.constants.c_id))
        }
    }

    /// The inputs of one transaction of kind `op` (clauses 2.4.1, 2.5.1, …).
    fn draw(&self, op: Operation, rng: &mut Rng) -> Input {
        match op {
            Operation::NewOrder => {
                let d = rng.range(1, DISTRICTS);
                let c = nurand(rng, 1023, 1, CUSTOMERS, self.constants.c_id);
                let count = rng.range(5, 15);
                let rollback = rng.range(1, 100) == 1;
                let mut all_local = true;
                let lines = (1..=count)
                    .map(|n| {
                        let item = if rollback && n == count {
                            ITEMS + 1
                        } else {
                            nurand(rng, 8191, 1, ITEMS, self.constants.ol_i_id)
                        };
                        let supply = if self.warehouses > 1 && rng.range(1, 100) == 1 {
                            all_local = false;
                            self.other(rng)
                        } else {
                            self.w
                        };
                        (item, supply, rng.range(1, 10))
                    })
                    .collect();
                Input::NewOrder {
                    d,
                    c,
                    lines,
                    all_local,
                }
            }
            Operation::Payment => {
                let d = rng.range(1, DISTRICTS);
                let (c_w, c_d) = if self.warehouses > 1 && rng.range(1, 100) > 85 {
                    (self.other(rng), rng.range(1, DISTRICTS))
                } else {
                    (self.w, d)
                };
                let customer = self.customer(rng, 60);
                let cents = rng.range(100, 500_000);
                let amount = format!("{}.{:02}", cents / 100, cents % 100);
                Input::Payment {
                    d,
                    c_w,
                    c_d,
                    customer,
                    amount,
                }
            }
            Operation::OrderStatus => Input::OrderStatus {
                d: rng.range(1, DISTRICTS),
                customer: self.customer(rng, 60),
            },
            Operation::Delivery => Input::Delivery {
                carrier: rng.range(1, 10),
            },
            _ => Input::StockLevel {
                d: rng.range(1, DISTRICTS),
                threshold: rng.range(10, 20),
            },
        }
    }
}

fn int(a: Option<&Arg>, what: &str) -> Result<i64, TxnError> {
    match a {
        Some(Arg::Int(v)) => Ok(*v),
        Some(Arg::Real(v)) => Ok(*v as i64),
        _ => Err(TxnError::Data(format!("{what} is missing"))),
    }
}

fn text(a: Option<&Arg>) -> String {
    match a {
        Some(Arg::Text(t)) => t.clone(),
        _ => String::new(),
    }
}

fn i(v: u64) -> Arg {
    Arg::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Run transaction `op` for `home`, retrying deadlocks and serialization failures.
///
/// # Errors
/// The database refused it (after the retries), or the data is not as loaded.
pub async fn run(
    s: &Statements,
    session: &mut Session,
    op: Operation,
    home: &Home,
    rng: &mut Rng,
) -> Result<TxnDone, TxnError> {
    let input = home.draw(op, rng);
    let write = !matches!(input, Input::OrderStatus { .. } | Input::StockLevel { .. });
    let mut retries = 0;
    loop {
        // SQLite reports a busy database at BEGIN IMMEDIATE as often as inside: the
        // same retry applies there.
        if let Err(e) = session
            .run_text(if write { s.begin_write } else { s.begin_read })
            .await
        {
            let e = TxnError::from(e);
            if retriable(s.driver, &e) && retries < MAX_RETRIES {
                retries += 1;
                continue;
            }
            return Err(e);
        }
        let result = body(s, session, home.w, &input).await;
        let result = match result {
            Ok(outcome) if outcome.rolled_back => session
                .run_text("ROLLBACK")
                .await
                .map(|_| outcome)
                .map_err(TxnError::from),
            Ok(outcome) => session
                .run_text("COMMIT")
                .await
                .map(|_| outcome)
                .map_err(TxnError::from),
            Err(e) => {
                let _ = session.run_text("ROLLBACK").await;
                Err(e)
            }
        };
        match result {
            Ok(outcome) => return Ok(TxnDone { retries, ..outcome }),
            Err(e) if retriable(s.driver, &e) && retries < MAX_RETRIES => retries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Whether the transaction may simply run again: a deadlock or serialization failure,
/// or on SQLite a writer that found the database locked (its one writer at a time was
/// busy past the busy timeout, or a checkpoint held it).
fn retriable(driver: Driver, e: &TxnError) -> bool {
    match e {
        TxnError::Sql(sql) => {
            e.class() == ErrorClass::Deadlock
                || (driver == Driver::Sqlite && sql.to_string().contains("database is locked"))
        }
        TxnError::Data(_) => false,
    }
}

/// The customer's id: as given, or the middle one (n/2 rounded up) of those with the
/// last name, ordered by first name (clause 2.5.2.2).
async fn customer_id(
    s: &Statements,
    session: &mut Session,
    w: u64,
    d: u64,
    c: &Customer,
) -> Result<u64, TxnError> {
    match c {
        Customer::Id(id) => Ok(*id),
        Customer::Last(name) => {
            let ids = session
                .first_column(&s.by_last, &[i(w), i(d), Arg::Text(name.clone())])
                .await?;
            if ids.is_empty() {
                return Err(TxnError::Data(format!(
                    "no customer named {name} in district {d} of warehouse {w}"
                )));
            }
            let pick = ids.len().div_ceil(2) - 1;
            Ok(u64::try_from(int(ids.get(pick), "c_id")?).unwrap_or(0))
        }
    }
}

async fn body(
    s: &Statements,
    session: &mut Session,
    w: u64,
    input: &Input,
) -> Result<TxnDone, TxnError> {
    match input {
        Input::NewOrder {
            d,
            c,
            lines,
            all_local,
        } => {
            let (d, c) = (*d, *c);
            if session.fetch(&s.no_customer, &[i(w), i(d), i(c)]).await? == 0 {
                return Err(TxnError::Data(format!(
                    "customer {c} of district {d}, warehouse {w} is missing"
                )));
            }
            let row = session
                .first_row(&s.no_district, &[i(w), i(d)], 1)
                .await?
                .unwrap_or_default();
            let o_id = int(row.first(), "d_next_o_id")?;
            session.execute(&s.no_district_next, &[i(w), i(d)]).await?;
            let count = lines.len() as u64;
            session
                .execute(
                    &s.no_order,
                    &[
                        Arg::Int(o_id),
                        i(d),
                        i(w),
                        i(c),
                        i(count),
                        i(u64::from(*all_local)),
                    ],
                )
                .await?;
            session
                .execute(&s.no_new_order, &[Arg::Int(o_id), i(d), i(w)])
                .await?;
            // Lock stock rows in (warehouse, item) order; line numbers stay as drawn.
            let mut order: Vec<usize> = (0..lines.len()).collect();
            order.sort_by_key(|&k| (lines[k].1, lines[k].0));
            for k in order {
                let (item, supply, quantity) = lines[k];
                if session.fetch(&s.no_item, &[i(item)]).await? == 0 {
                    // The specification's 1 %: an unused item rolls the order back.
                    return Ok(TxnDone {
                        rolled_back: true,
                        remote: !all_local,
                        rows: 0,
                        retries: 0,
                    });
                }
                let stock = session
                    .first_row(&s.no_stock[(d - 1) as usize], &[i(item), i(supply)], 2)
                    .await?
                    .ok_or_else(|| {
                        TxnError::Data(format!(
                            "stock of item {item} in warehouse {supply} is missing"
                        ))
                    })?;
                let have = int(stock.first(), "s_quantity")?;
                let q = i64::try_from(quantity).unwrap_or(0);
                let left = if have >= q + 10 {
                    have - q
                } else {
                    have - q + 91
                };
                let remote = i64::from(supply != w);
                session
                    .execute(
                        &s.no_stock_update,
                        &[
                            Arg::Int(left),
                            Arg::Int(q),
                            Arg::Int(remote),
                            i(item),
                            i(supply),
                        ],
                    )
                    .await?;
                let info = text(stock.get(1));
                session
                    .execute(
                        &s.no_line,
                        &[
                            Arg::Int(o_id),
                            i(d),
                            i(w),
                            i(k as u64 + 1),
                            i(item),
                            i(supply),
                            Arg::Int(q),
                            Arg::Int(q),
                            Arg::Text(info),
                            i(item),
                        ],
                    )
                    .await?;
            }
            Ok(TxnDone {
                rolled_back: false,
                remote: !all_local,
                rows: count,
                retries: 0,
            })
        }
        Input::Payment {
            d,
            c_w,
            c_d,
            customer,
            amount,
        } => {
            let (d, c_w, c_d) = (*d, *c_w, *c_d);
            let amt = || Arg::Text(amount.clone());
            session.execute(&s.p_warehouse, &[amt(), i(w)]).await?;
            let w_name = text(
                session
                    .first_row(&s.p_warehouse_read, &[i(w)], 1)
                    .await?
                    .unwrap_or_default()
                    .first(),
            );
            session.execute(&s.p_district, &[amt(), i(w), i(d)]).await?;
            let d_name = text(
                session
                    .first_row(&s.p_district_read, &[i(w), i(d)], 1)
                    .await?
                    .unwrap_or_default()
                    .first(),
            );
            let c = customer_id(s, session, c_w, c_d, customer).await?;
            let row = session
                .first_row(&s.p_customer, &[i(c_w), i(c_d), i(c)], 1)
                .await?
                .ok_or_else(|| {
                    TxnError::Data(format!(
                        "customer {c} of district {c_d}, warehouse {c_w} is missing"
                    ))
                })?;
            if text(row.first()) == "BC" {
                let note = format!("{c} {c_d} {c_w} {d} {w} {amount} | ");
                session
                    .execute(
                        &s.p_pay_bad_credit,
                        &[amt(), amt(), Arg::Text(note), i(c_w), i(c_d), i(c)],
                    )
                    .await?;
            } else {
                session
                    .execute(&s.p_pay, &[amt(), amt(), i(c_w), i(c_d), i(c)])
                    .await?;
            }
            let h_data: String = format!("{w_name}    {d_name}").chars().take(24).collect();
            session
                .execute(
                    &s.p_history,
                    &[i(c), i(c_d), i(c_w), i(d), i(w), amt(), Arg::Text(h_data)],
                )
                .await?;
            Ok(TxnDone {
                remote: c_w != w,
                rows: 1,
                ..TxnDone::default()
            })
        }
        Input::OrderStatus { d, customer } => {
            let d = *d;
            let c = customer_id(s, session, w, d, customer).await?;
            session.fetch(&s.os_customer, &[i(w), i(d), i(c)]).await?;
            let order = session
                .first_column(&s.os_order, &[i(w), i(d), i(c)])
                .await?;
            let rows = match order.first() {
                Some(o) => session.fetch(&s.os_lines, &[i(w), i(d), o.clone()]).await? as u64,
                None => 0,
            };
            Ok(TxnDone {
                rows,
                ..TxnDone::default()
            })
        }
        Input::Delivery { carrier } => {
            let mut delivered = 0;
            for d in 1..=DISTRICTS {
                let oldest = session.first_column(&s.d_oldest, &[i(w), i(d)]).await?;
                let Some(o) = oldest.first().cloned() else {
                    continue;
                };
                if session.execute(&s.d_take, &[i(w), i(d), o.clone()]).await? == 0 {
                    continue;
                }
                let c = session
                    .first_column(&s.d_order, &[i(w), i(d), o.clone()])
                    .await?;
                let c = int(c.first(), "o_c_id")?;
                session
                    .execute(&s.d_carrier, &[i(*carrier), i(w), i(d), o.clone()])
                    .await?;
                session
                    .execute(&s.d_lines, &[i(w), i(d), o.clone()])
                    .await?;
                session
                    .execute(&s.d_customer, &[i(w), i(d), o, i(w), i(d), Arg::Int(c)])
                    .await?;
                delivered += 1;
            }
            Ok(TxnDone {
                rows: delivered,
                ..TxnDone::default()
            })
        }
        Input::StockLevel { d, threshold } => {
            let next = session.first_column(&s.sl_next, &[i(w), i(*d)]).await?;
            let next = int(next.first(), "d_next_o_id")?;
            let low = session
                .first_column(
                    &s.sl_count,
                    &[
                        i(w),
                        i(*d),
                        Arg::Int(next),
                        Arg::Int(next - 20),
                        i(w),
                        i(*threshold),
                    ],
                )
                .await?;
            Ok(TxnDone {
                rows: u64::try_from(int(low.first(), "count")?).unwrap_or(0),
                ..TxnDone::default()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inputs follow the specification's proportions: 1 % of New-Orders roll back,
    /// 1 % of order lines come from a remote warehouse, 15 % of Payments are for a
    /// remote customer, 60 % of customers are found by last name.
    #[test]
    fn inputs_have_the_specification_s_proportions() {
        let home = Home {
            w: 2,
            warehouses: 5,
            constants: Constants::run(42),
        };
        let mut rng = Rng::new(9);
        let n = 100_000;
        let (mut rollbacks, mut lines, mut remote_lines) = (0, 0, 0);
        for _ in 0..n {
            let Input::NewOrder { lines: l, d, c, .. } = home.draw(Operation::NewOrder, &mut rng)
            else {
                panic!("not a New-Order");
            };
            assert!(
                (1..=10).contains(&d) && (1..=3000).contains(&c) && (5..=15).contains(&l.len())
            );
            rollbacks += usize::from(l.last().is_some_and(|x| x.0 == ITEMS + 1));
            lines += l.len();
            remote_lines += l.iter().filter(|x| x.1 != 2).count();
            assert!(l
                .iter()
                .all(|x| (1..=5).contains(&x.1) && (1..=10).contains(&x.2)));
        }
        let pct = |a: usize, b: usize| a as f64 * 100.0 / b as f64;
        assert!(
            (0.9..1.1).contains(&pct(rollbacks, n)),
            "{}",
            pct(rollbacks, n)
        );
        assert!(
            (0.9..1.1).contains(&pct(remote_lines, lines)),
            "{}",
            pct(remote_lines, lines)
        );
        let (mut remote, mut by_name) = (0, 0);
        for _ in 0..n {
            let Input::Payment {
                c_w,
                customer,
                amount,
                ..
            } = home.draw(Operation::Payment, &mut rng)
            else {
                panic!("not a Payment");
            };
            remote += usize::from(c_w != 2);
            by_name += usize::from(matches!(customer, Customer::Last(_)));
            let cents: f64 = amount.parse().unwrap();
            assert!((1.0..=5000.0).contains(&cents), "{amount}");
        }
        assert!((14.5..15.5).contains(&pct(remote, n)), "{}", pct(remote, n));
        assert!(
            (59.5..60.5).contains(&pct(by_name, n)),
            "{}",
            pct(by_name, n)
        );
        // One warehouse: nothing is remote.
        let alone = Home {
            w: 1,
            warehouses: 1,
            ..home
        };
        for _ in 0..1000 {
            if let Input::Payment { c_w, .. } = alone.draw(Operation::Payment, &mut rng) {
                assert_eq!(c_w, 1);
            }
        }
    }
}
