//! TPC-C's statements, rendered once per dialect: locking reads where the dialect has
//! them (SQLite serializes writers instead), money as exact decimals.

use crate::session::placeholders;
use fleetload_common::target::Driver;
use fleetload_common::tpcc::DISTRICTS;

/// The statements, rendered once for a dialect.
#[derive(Debug, Clone)]
pub struct Statements {
    pub(super) driver: Driver,
    pub(super) begin_write: &'static str,
    pub(super) begin_read: &'static str,
    pub(super) no_customer: String,
    pub(super) no_district: String,
    pub(super) no_district_next: String,
    pub(super) no_order: String,
    pub(super) no_new_order: String,
    pub(super) no_item: String,
    /// One per district: `s_dist_NN` is the district's.
    pub(super) no_stock: Vec<String>,
    pub(super) no_stock_update: String,
    pub(super) no_line: String,
    pub(super) p_warehouse: String,
    pub(super) p_warehouse_read: String,
    pub(super) p_district: String,
    pub(super) p_district_read: String,
    pub(super) by_last: String,
    pub(super) p_customer: String,
    pub(super) p_pay: String,
    pub(super) p_pay_bad_credit: String,
    pub(super) p_history: String,
    pub(super) os_customer: String,
    pub(super) os_order: String,
    pub(super) os_lines: String,
    pub(super) d_oldest: String,
    pub(super) d_take: String,
    pub(super) d_order: String,
    pub(super) d_carrier: String,
    pub(super) d_lines: String,
    pub(super) d_customer: String,
    pub(super) sl_next: String,
    pub(super) sl_count: String,
}

impl Statements {
    pub fn new(driver: Driver) -> Self {
        let q = |s: &str| placeholders(driver, s);
        let lock = if driver == Driver::Sqlite {
            ""
        } else {
            " FOR UPDATE"
        };
        let concat = |a: &str, b: &str| match driver {
            Driver::MySql => format!("CONCAT({a}, {b})"),
            Driver::Postgres | Driver::Sqlite => format!("{a} || {b}"),
        };
        Statements {
            driver,
            // SQLite takes its write lock at the start (see scenario_file.rs), reads need none.
            begin_write: match driver {
                Driver::MySql => "START TRANSACTION",
                Driver::Postgres => "BEGIN",
                Driver::Sqlite => "BEGIN IMMEDIATE",
            },
            begin_read: match driver {
                Driver::MySql => "START TRANSACTION",
                Driver::Postgres | Driver::Sqlite => "BEGIN",
            },
            no_customer: q("SELECT c_discount, c_last, c_credit, w_tax FROM customer, warehouse WHERE w_id = ? AND c_w_id = w_id AND c_d_id = ? AND c_id = ?"),
            no_district: q(&format!("SELECT d_next_o_id, d_tax FROM district WHERE d_w_id = ? AND d_id = ?{lock}")),
            no_district_next: q("UPDATE district SET d_next_o_id = d_next_o_id + 1 WHERE d_w_id = ? AND d_id = ?"),
            no_order: q("INSERT INTO orders (o_id, o_d_id, o_w_id, o_c_id, o_entry_d, o_carrier_id, o_ol_cnt, o_all_local) VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP, NULL, ?, ?)"),
            no_new_order: q("INSERT INTO new_order (no_o_id, no_d_id, no_w_id) VALUES (?, ?, ?)"),
            no_item: q("SELECT i_price, i_name, i_data FROM item WHERE i_id = ?"),
            no_stock: (1..=DISTRICTS)
                .map(|d| q(&format!("SELECT s_quantity, s_dist_{d:02}, s_data FROM stock WHERE s_i_id = ? AND s_w_id = ?{lock}")))
                .collect(),
            no_stock_update: q("UPDATE stock SET s_quantity = ?, s_ytd = s_ytd + ?, s_order_cnt = s_order_cnt + 1, s_remote_cnt = s_remote_cnt + ? WHERE s_i_id = ? AND s_w_id = ?"),
            no_line: q("INSERT INTO order_line (ol_o_id, ol_d_id, ol_w_id, ol_number, ol_i_id, ol_supply_w_id, ol_delivery_d, ol_quantity, ol_amount, ol_dist_info) SELECT ?, ?, ?, ?, ?, ?, NULL, ?, ? * i_price, ? FROM item WHERE i_id = ?"),
            p_warehouse: q("UPDATE warehouse SET w_ytd = w_ytd + CAST(? AS DECIMAL(12,2)) WHERE w_id = ?"),
            p_warehouse_read: q("SELECT w_name, w_street_1, w_street_2, w_city, w_state, w_zip FROM warehouse WHERE w_id = ?"),
            p_district: q("UPDATE district SET d_ytd = d_ytd + CAST(? AS DECIMAL(12,2)) WHERE d_w_id = ? AND d_id = ?"),
            p_district_read: q("SELECT d_name, d_street_1, d_street_2, d_city, d_state, d_zip FROM district WHERE d_w_id = ? AND d_id = ?"),
            by_last: q("SELECT c_id FROM customer WHERE c_w_id = ? AND c_d_id = ? AND c_last = ? ORDER BY c_first"),
            p_customer: q(&format!("SELECT c_credit, c_first, c_middle, c_last, c_street_1, c_street_2, c_city, c_state, c_zip, c_phone, c_credit_lim, c_discount, c_balance, c_since FROM customer WHERE c_w_id = ? AND c_d_id = ? AND c_id = ?{lock}")),
            p_pay: q("UPDATE customer SET c_balance = c_balance - CAST(? AS DECIMAL(12,2)), c_ytd_payment = c_ytd_payment + CAST(? AS DECIMAL(12,2)), c_payment_cnt = c_payment_cnt + 1 WHERE c_w_id = ? AND c_d_id = ? AND c_id = ?"),
            p_pay_bad_credit: q(&format!("UPDATE customer SET c_balance = c_balance - CAST(? AS DECIMAL(12,2)), c_ytd_payment = c_ytd_payment + CAST(? AS DECIMAL(12,2)), c_payment_cnt = c_payment_cnt + 1, c_data = SUBSTR({}, 1, 500) WHERE c_w_id = ? AND c_d_id = ? AND c_id = ?", concat("?", "c_data"))),
            p_history: q("INSERT INTO history (h_c_id, h_c_d_id, h_c_w_id, h_d_id, h_w_id, h_date, h_amount, h_data) VALUES (?, ?, ?, ?, ?, CURRENT_TIMESTAMP, CAST(? AS DECIMAL(6,2)), ?)"),
            os_customer: q("SELECT c_balance, c_first, c_middle, c_last FROM customer WHERE c_w_id = ? AND c_d_id = ? AND c_id = ?"),
            os_order: q("SELECT o_id FROM orders WHERE o_w_id = ? AND o_d_id = ? AND o_c_id = ? ORDER BY o_id DESC LIMIT 1"),
            os_lines: q("SELECT ol_i_id, ol_supply_w_id, ol_quantity, ol_amount, ol_delivery_d FROM order_line WHERE ol_w_id = ? AND ol_d_id = ? AND ol_o_id = ?"),
            d_oldest: q(&format!("SELECT no_o_id FROM new_order WHERE no_w_id = ? AND no_d_id = ? ORDER BY no_o_id LIMIT 1{lock}")),
            d_take: q("DELETE FROM new_order WHERE no_w_id = ? AND no_d_id = ? AND no_o_id = ?"),
            d_order: q("SELECT o_c_id FROM orders WHERE o_w_id = ? AND o_d_id = ? AND o_id = ?"),
            d_carrier: q("UPDATE orders SET o_carrier_id = ? WHERE o_w_id = ? AND o_d_id = ? AND o_id = ?"),
            d_lines: q("UPDATE order_line SET ol_delivery_d = CURRENT_TIMESTAMP WHERE ol_w_id = ? AND ol_d_id = ? AND ol_o_id = ?"),
            d_customer: q("UPDATE customer SET c_balance = c_balance + (SELECT SUM(ol_amount) FROM order_line WHERE ol_w_id = ? AND ol_d_id = ? AND ol_o_id = ?), c_delivery_cnt = c_delivery_cnt + 1 WHERE c_w_id = ? AND c_d_id = ? AND c_id = ?"),
            sl_next: q("SELECT d_next_o_id FROM district WHERE d_w_id = ? AND d_id = ?"),
            sl_count: q("SELECT COUNT(DISTINCT s_i_id) FROM order_line, stock WHERE ol_w_id = ? AND ol_d_id = ? AND ol_o_id < ? AND ol_o_id >= ? AND s_w_id = ? AND s_i_id = ol_i_id AND s_quantity < ?"),
        }
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }
}
