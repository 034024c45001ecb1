//! TPC-C's schema and initial population (clauses 1.3 and 4.3) as SQL text per dialect.
//!
//! A warehouse is loaded in [`UNITS_PER_WAREHOUSE`] independent units (its stock in ten
//! slices, then each district with its customers, history, orders, order lines and new
//! orders), each of multi-row INSERTs of literals, so several sessions, or several
//! workers, load one fleet's warehouses at once. Every value depends only on the seed,
//! the warehouse and the unit: any split gives the same database.

use fleetload_common::rng::Rng;
use fleetload_common::target::Driver;
use fleetload_common::tpcc::{
    a_string, cents, data_with_original, fraction, load_last_name, n_string, zip, Constants,
    CUSTOMERS, DISTRICTS, FIRST_NEW_ORDER, ITEMS, ORDERS,
};
use std::fmt::Write;

/// Rows per INSERT statement.
const ROWS_PER_INSERT: usize = 500;
/// Stock slices per warehouse (of `ITEMS / STOCK_SLICES` items each).
const STOCK_SLICES: u64 = 10;
/// Units a warehouse loads in: its stock slices, then its districts.
pub const UNITS_PER_WAREHOUSE: u64 = STOCK_SLICES + DISTRICTS;

/// The nine tables, in the order they are dropped and made.
pub const TABLES: [&str; 9] = [
    "warehouse",
    "district",
    "customer",
    "history",
    "new_order",
    "orders",
    "order_line",
    "item",
    "stock",
];

/// One query per table naming the columns the transactions use: what the pre-run check
/// prepares, so a database without TPC-C's tables is refused before the start.
pub const PROBES: [&str; 9] = [
    "SELECT w_id, w_name, w_tax, w_ytd FROM warehouse WHERE 1 = 0",
    "SELECT d_id, d_w_id, d_name, d_tax, d_ytd, d_next_o_id FROM district WHERE 1 = 0",
    "SELECT c_id, c_d_id, c_w_id, c_last, c_first, c_credit, c_discount, c_balance, c_ytd_payment, c_payment_cnt, c_delivery_cnt, c_data FROM customer WHERE 1 = 0",
    "SELECT h_c_id, h_amount, h_data FROM history WHERE 1 = 0",
    "SELECT no_o_id, no_d_id, no_w_id FROM new_order WHERE 1 = 0",
    "SELECT o_id, o_d_id, o_w_id, o_c_id, o_carrier_id, o_ol_cnt, o_all_local FROM orders WHERE 1 = 0",
    "SELECT ol_o_id, ol_number, ol_i_id, ol_supply_w_id, ol_delivery_d, ol_quantity, ol_amount, ol_dist_info FROM order_line WHERE 1 = 0",
    "SELECT i_id, i_price, i_name, i_data FROM item WHERE 1 = 0",
    "SELECT s_i_id, s_w_id, s_quantity, s_dist_01, s_dist_10, s_ytd, s_order_cnt, s_remote_cnt, s_data FROM stock WHERE 1 = 0",
];

/// Drop and create the nine tables (primary keys included; secondary indexes come
/// after the load, in [`indexes`]).
pub fn schema(driver: Driver) -> Vec<String> {
    let ts = match driver {
        Driver::MySql => "DATETIME(6)",
        Driver::Postgres | Driver::Sqlite => "TIMESTAMP",
    };
    let engine = match driver {
        Driver::MySql => " ENGINE=InnoDB",
        Driver::Postgres | Driver::Sqlite => "",
    };
    let dists: String = (1..=10)
        .map(|i| format!("s_dist_{i:02} CHAR(24), "))
        .collect();
    let mut out: Vec<String> = TABLES
        .iter()
        .map(|t| format!("DROP TABLE IF EXISTS {t}"))
        .collect();
    for body in [
        "warehouse (w_id INT NOT NULL, w_name VARCHAR(10), w_street_1 VARCHAR(20), w_street_2 VARCHAR(20), w_city VARCHAR(20), w_state CHAR(2), w_zip CHAR(9), w_tax DECIMAL(4,4), w_ytd DECIMAL(12,2), PRIMARY KEY (w_id))".to_string(),
        "district (d_id INT NOT NULL, d_w_id INT NOT NULL, d_name VARCHAR(10), d_street_1 VARCHAR(20), d_street_2 VARCHAR(20), d_city VARCHAR(20), d_state CHAR(2), d_zip CHAR(9), d_tax DECIMAL(4,4), d_ytd DECIMAL(12,2), d_next_o_id INT, PRIMARY KEY (d_w_id, d_id))".to_string(),
        format!("customer (c_id INT NOT NULL, c_d_id INT NOT NULL, c_w_id INT NOT NULL, c_first VARCHAR(16), c_middle CHAR(2), c_last VARCHAR(16), c_street_1 VARCHAR(20), c_street_2 VARCHAR(20), c_city VARCHAR(20), c_state CHAR(2), c_zip CHAR(9), c_phone CHAR(16), c_since {ts}, c_credit CHAR(2), c_credit_lim DECIMAL(12,2), c_discount DECIMAL(4,4), c_balance DECIMAL(12,2), c_ytd_payment DECIMAL(12,2), c_payment_cnt INT, c_delivery_cnt INT, c_data VARCHAR(500), PRIMARY KEY (c_w_id, c_d_id, c_id))"),
        format!("history (h_c_id INT, h_c_d_id INT, h_c_w_id INT, h_d_id INT, h_w_id INT, h_date {ts}, h_amount DECIMAL(6,2), h_data VARCHAR(24))"),
        "new_order (no_o_id INT NOT NULL, no_d_id INT NOT NULL, no_w_id INT NOT NULL, PRIMARY KEY (no_w_id, no_d_id, no_o_id))".to_string(),
        format!("orders (o_id INT NOT NULL, o_d_id INT NOT NULL, o_w_id INT NOT NULL, o_c_id INT, o_entry_d {ts}, o_carrier_id INT, o_ol_cnt INT, o_all_local INT, PRIMARY KEY (o_w_id, o_d_id, o_id))"),
        format!("order_line (ol_o_id INT NOT NULL, ol_d_id INT NOT NULL, ol_w_id INT NOT NULL, ol_number INT NOT NULL, ol_i_id INT, ol_supply_w_id INT, ol_delivery_d {ts} NULL, ol_quantity INT, ol_amount DECIMAL(6,2), ol_dist_info CHAR(24), PRIMARY KEY (ol_w_id, ol_d_id, ol_o_id, ol_number))"),
        "item (i_id INT NOT NULL, i_im_id INT, i_name VARCHAR(24), i_price DECIMAL(5,2), i_data VARCHAR(50), PRIMARY KEY (i_id))".to_string(),
        format!("stock (s_i_id INT NOT NULL, s_w_id INT NOT NULL, s_quantity INT, {dists}s_ytd INT, s_order_cnt INT, s_remote_cnt INT, s_data VARCHAR(50), PRIMARY KEY (s_w_id, s_i_id))"),
    ] {
        out.push(format!("CREATE TABLE {body}{engine}"));
    }
    out
}

/// The secondary indexes the transactions' look-ups need: customers by last name
/// (Payment, Order-Status) and a customer's orders (Order-Status). Built after the
/// load, and statistics refreshed.
pub fn indexes(driver: Driver) -> Vec<String> {
    let mut out = vec![
        "CREATE INDEX idx_customer_name ON customer (c_w_id, c_d_id, c_last, c_first)".to_string(),
        "CREATE INDEX idx_orders_customer ON orders (o_w_id, o_d_id, o_c_id, o_id)".to_string(),
    ];
    out.extend(match driver {
        Driver::MySql => TABLES
            .iter()
            .map(|t| format!("ANALYZE TABLE {t}"))
            .collect::<Vec<_>>(),
        Driver::Postgres => TABLES.iter().map(|t| format!("ANALYZE {t}")).collect(),
        Driver::Sqlite => vec!["ANALYZE".to_string()],
    });
    out
}

/// Statements of rows, `ROWS_PER_INSERT` to a statement.
struct Batch<'a> {
    head: &'a str,
    out: &'a mut Vec<String>,
    current: String,
    rows: usize,
}

impl<'a> Batch<'a> {
    fn new(head: &'a str, out: &'a mut Vec<String>) -> Self {
        Batch {
            head,
            out,
            current: String::new(),
            rows: 0,
        }
    }

    fn row(&mut self, values: std::fmt::Arguments<'_>) {
        if self.rows == 0 {
            self.current.push_str(self.head);
            self.current.push_str(" VALUES ");
        } else {
            self.current.push(',');
        }
        self.current.push('(');
        let _ = self.current.write_fmt(values);
        self.current.push(')');
        self.rows += 1;
        if self.rows == ROWS_PER_INSERT {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.rows > 0 {
            self.out.push(std::mem::take(&mut self.current));
            self.rows = 0;
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The item catalogue, loaded once for the whole fleet.
pub fn items(seed: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut rng = Rng::for_stream(seed, &[0x7CC, 0]);
    let mut b = Batch::new(
        "INSERT INTO item (i_id, i_im_id, i_name, i_price, i_data)",
        &mut out,
    );
    for i in 1..=ITEMS {
        let im = rng.range(1, 10_000);
        let name = a_string(&mut rng, 14, 24);
        let price = cents(&mut rng, 100, 10_000);
        let data = data_with_original(&mut rng);
        b.row(format_args!("{i},{im},'{name}',{price},'{data}'"));
    }
    drop(b);
    out
}

/// The rows of unit `unit` of warehouse `w` (see [`UNITS_PER_WAREHOUSE`]).
pub fn unit(seed: u64, w: u64, unit: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut rng = Rng::for_stream(seed, &[0x7CC, w, unit + 1]);
    if unit < STOCK_SLICES {
        if unit == 0 {
            let (name, s1, s2, city, st, z, tax) = address(&mut rng);
            out.push(format!(
                "INSERT INTO warehouse VALUES ({w},'{name}','{s1}','{s2}','{city}','{st}','{z}',{tax},300000.00)"
            ));
        }
        let per = ITEMS / STOCK_SLICES;
        let mut b = Batch::new("INSERT INTO stock (s_i_id, s_w_id, s_quantity, s_dist_01, s_dist_02, s_dist_03, s_dist_04, s_dist_05, s_dist_06, s_dist_07, s_dist_08, s_dist_09, s_dist_10, s_ytd, s_order_cnt, s_remote_cnt, s_data)", &mut out);
        for i in unit * per + 1..=(unit + 1) * per {
            let q = rng.range(10, 100);
            let mut dists = String::new();
            for _ in 0..10 {
                let _ = write!(dists, "'{}',", a_string(&mut rng, 24, 24));
            }
            let data = data_with_original(&mut rng);
            b.row(format_args!("{i},{w},{q},{dists}0,0,0,'{data}'"));
        }
        drop(b);
        return out;
    }
    district(seed, w, unit - STOCK_SLICES + 1, &mut rng, &mut out);
    out
}

/// A name and an address: (name, street 1, street 2, city, state, zip, tax).
fn address(rng: &mut Rng) -> (String, String, String, String, String, String, String) {
    (
        a_string(rng, 6, 10),
        a_string(rng, 10, 20),
        a_string(rng, 10, 20),
        a_string(rng, 10, 20),
        a_string(rng, 2, 2).to_ascii_uppercase(),
        zip(rng),
        fraction(rng, 0, 2000),
    )
}

/// District `d` of warehouse `w`: its row, customers and their history rows, orders,
/// order lines and new orders.
fn district(seed: u64, w: u64, d: u64, rng: &mut Rng, out: &mut Vec<String>) {
    let (name, s1, s2, city, st, z, tax) = address(rng);
    out.push(format!(
        "INSERT INTO district VALUES ({d},{w},'{name}','{s1}','{s2}','{city}','{st}','{z}',{tax},30000.00,{})",
        ORDERS + 1
    ));
    let constants = Constants::load(seed);
    {
        let mut c = Batch::new("INSERT INTO customer (c_id, c_d_id, c_w_id, c_first, c_middle, c_last, c_street_1, c_street_2, c_city, c_state, c_zip, c_phone, c_since, c_credit, c_credit_lim, c_discount, c_balance, c_ytd_payment, c_payment_cnt, c_delivery_cnt, c_data)", out);
        for id in 1..=CUSTOMERS {
            let last = load_last_name(rng, id, &constants);
            let first = a_string(rng, 8, 16);
            let (_, s1, s2, city, st, z, _) = address(rng);
            let phone = n_string(rng, 16, 16);
            let credit = if rng.range(1, 10) == 1 { "BC" } else { "GC" };
            let discount = fraction(rng, 0, 5000);
            let data = a_string(rng, 300, 500);
            c.row(format_args!(
                "{id},{d},{w},'{first}','OE','{last}','{s1}','{s2}','{city}','{st}','{z}','{phone}',CURRENT_TIMESTAMP,'{credit}',50000.00,{discount},-10.00,10.00,1,0,'{data}'"
            ));
        }
    }
    {
        let mut h = Batch::new("INSERT INTO history (h_c_id, h_c_d_id, h_c_w_id, h_d_id, h_w_id, h_date, h_amount, h_data)", out);
        for id in 1..=CUSTOMERS {
            let data = a_string(rng, 12, 24);
            h.row(format_args!(
                "{id},{d},{w},{d},{w},CURRENT_TIMESTAMP,10.00,'{data}'"
            ));
        }
    }
    // Orders by a random permutation of the customers.
    let mut customers: Vec<u64> = (1..=CUSTOMERS).collect();
    for i in (1..customers.len()).rev() {
        let j = rng.range(0, i as u64) as usize;
        customers.swap(i, j);
    }
    let mut lines = Vec::with_capacity(ORDERS as usize);
    {
        let mut o = Batch::new("INSERT INTO orders (o_id, o_d_id, o_w_id, o_c_id, o_entry_d, o_carrier_id, o_ol_cnt, o_all_local)", out);
        for o_id in 1..=ORDERS {
            let carrier = if o_id < FIRST_NEW_ORDER {
                rng.range(1, 10).to_string()
            } else {
                "NULL".into()
            };
            let ol_cnt = rng.range(5, 15);
            lines.push(ol_cnt);
            let c_id = customers[(o_id - 1) as usize];
            o.row(format_args!(
                "{o_id},{d},{w},{c_id},CURRENT_TIMESTAMP,{carrier},{ol_cnt},1"
            ));
        }
    }
    {
        let mut l = Batch::new("INSERT INTO order_line (ol_o_id, ol_d_id, ol_w_id, ol_number, ol_i_id, ol_supply_w_id, ol_delivery_d, ol_quantity, ol_amount, ol_dist_info)", out);
        for (o_id, ol_cnt) in (1..=ORDERS).zip(lines) {
            for n in 1..=ol_cnt {
                let item = rng.range(1, ITEMS);
                let (delivered, amount) = if o_id < FIRST_NEW_ORDER {
                    ("CURRENT_TIMESTAMP", "0.00".to_string())
                } else {
                    ("NULL", cents(rng, 1, 999_999))
                };
                let info = a_string(rng, 24, 24);
                l.row(format_args!(
                    "{o_id},{d},{w},{n},{item},{w},{delivered},5,{amount},'{info}'"
                ));
            }
        }
    }
    let mut n = Batch::new("INSERT INTO new_order (no_o_id, no_d_id, no_w_id)", out);
    for o_id in FIRST_NEW_ORDER..=ORDERS {
        n.row(format_args!("{o_id},{d},{w}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warehouse_has_the_specification_s_row_counts_in_any_split() {
        let count = |stmts: &[String], table: &str| -> usize {
            stmts
                .iter()
                .filter(|s| s.starts_with(&format!("INSERT INTO {table} ")))
                .map(|s| {
                    if table == "warehouse" || table == "district" {
                        1
                    } else {
                        s.matches("),(").count() + 1
                    }
                })
                .sum()
        };
        let all: Vec<String> = (0..UNITS_PER_WAREHOUSE)
            .flat_map(|u| unit(7, 3, u))
            .collect();
        assert_eq!(count(&all, "warehouse"), 1);
        assert_eq!(count(&all, "stock"), 100_000);
        assert_eq!(count(&all, "district"), 10);
        assert_eq!(count(&all, "customer"), 30_000);
        assert_eq!(count(&all, "history"), 30_000);
        assert_eq!(count(&all, "orders"), 30_000);
        assert_eq!(count(&all, "new_order"), 9_000);
        let lines = count(&all, "order_line");
        assert!((50 * 3000..=150 * 3000).contains(&lines), "{lines}");
        // The same seed, warehouse and unit give the same rows.
        assert_eq!(unit(7, 3, 12), unit(7, 3, 12));
        assert_ne!(unit(7, 3, 12), unit(7, 4, 12));
        assert_eq!(count(&items(7), "item"), 100_000);
        assert_eq!(schema(Driver::Postgres).len(), 18);
    }
}
