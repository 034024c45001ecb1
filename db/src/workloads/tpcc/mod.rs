//! TPC-C (5.11) as a built-in scenario: the schema and population ([`load`]), the five
//! transactions ([`txn`], their SQL in `sql`) and the consistency conditions ([`check`]). Warehouses are the
//! key space: each worker's shard is its home warehouses, and remote warehouses are
//! drawn from the whole fleet's.

pub mod check;
pub mod load;
mod sql;
pub mod txn;
