//! The built-in scenarios and their operations. Names here are the names users write in
//! plans and read in reports, so they are stable.

use serde::Serialize;
use std::sync::Arc;

/// The name of an operation, as users write it in plans and read it in reports: a
/// built-in operation's name or one a scenario file defines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpName(Arc<str>);

impl OpName {
    /// Longest operation name.
    pub const MAX_LEN: usize = 64;

    /// A name: 1 to 64 lowercase letters, digits and `_`, starting with a letter (it is
    /// a CSV column, a JSON key, an HdrHistogram tag and a Prometheus label value).
    ///
    /// # Errors
    /// The name breaks one of those rules; the message says which.
    pub fn new(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(OpName(Arc::from(name)))
        } else {
            Err(format!(
                "operation name {name:?} must be 1 to {} lowercase letters, digits and _, starting with a letter",
                Self::MAX_LEN
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Same as [`OpName::as_str`]; kept so call sites read like the built-in `name()`.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The built-in operation of this name, if it is one.
    pub fn builtin(&self) -> Option<Operation> {
        Operation::from_name(&self.0)
    }
}

impl From<Operation> for OpName {
    fn from(op: Operation) -> Self {
        OpName(Arc::from(op.name()))
    }
}

impl std::fmt::Display for OpName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for OpName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl PartialEq<Operation> for OpName {
    fn eq(&self, other: &Operation) -> bool {
        &*self.0 == other.name()
    }
}

impl<'de> serde::Deserialize<'de> for OpName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OpName::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A workload: a schema, its data and a set of operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// sysbench's `sbtest1` table and `SELECT c FROM sbtest1 WHERE id=?`.
    PointSelect,
    /// The telco-churn `customers` table (Aurora ML flagship scenario).
    Churn,
    /// TPC-C's nine tables and five transactions; the key space is warehouses.
    Tpcc,
}

/// One kind of database operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    PointSelect,
    /// Read one customer row by id (no model call).
    ReadCustomer,
    /// Score one customer by id: `SELECT will_churn(<15 features>) … WHERE id = ?`.
    PredictOne,
    /// Read a stored prediction by id.
    ReadPrediction,
    /// Insert a new customer; the BEFORE INSERT trigger scores it.
    InsertCustomer,
    /// Change a customer's usage columns; the BEFORE UPDATE trigger re-scores it.
    UpdateUsage,
    /// Score a range of `batch` customers in one statement: the batched path.
    PredictBatch,
    /// INSERT … SELECT of `batch` new rows with the model in the select list.
    ScoreNew,
    /// TPC-C New-Order: an order of 5 to 15 lines (1 % roll back on an unused item).
    NewOrder,
    /// TPC-C Payment: a customer pays, by last name 60 % of the time.
    Payment,
    /// TPC-C Order-Status: a customer's last order and its lines.
    OrderStatus,
    /// TPC-C Delivery: the oldest undelivered order of each of a warehouse's districts.
    Delivery,
    /// TPC-C Stock-Level: recently ordered items below a stock threshold.
    StockLevel,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::PointSelect, Scenario::Churn, Scenario::Tpcc];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::PointSelect => "point_select",
            Scenario::Churn => "churn",
            Scenario::Tpcc => "tpcc",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Operations this scenario can run.
    pub fn operations(self) -> &'static [Operation] {
        match self {
            Scenario::PointSelect => &[Operation::PointSelect],
            Scenario::Churn => &[
                Operation::ReadCustomer,
                Operation::PredictOne,
                Operation::ReadPrediction,
                Operation::InsertCustomer,
                Operation::UpdateUsage,
                Operation::PredictBatch,
                Operation::ScoreNew,
            ],
            Scenario::Tpcc => &[
                Operation::NewOrder,
                Operation::Payment,
                Operation::OrderStatus,
                Operation::Delivery,
                Operation::StockLevel,
            ],
        }
    }

    /// The mix used when the plan names none.
    pub fn default_mix(self) -> Vec<(Operation, u32)> {
        match self {
            Scenario::PointSelect => vec![(Operation::PointSelect, 1)],
            // Mostly reads, a steady share of model calls, and writes that fire the
            // triggers: the OLTP-plus-inference shape of the Aurora ML blog post.
            Scenario::Churn => vec![
                (Operation::ReadCustomer, 4),
                (Operation::PredictOne, 2),
                (Operation::ReadPrediction, 2),
                (Operation::InsertCustomer, 1),
                (Operation::UpdateUsage, 1),
                (Operation::PredictBatch, 1),
                (Operation::ScoreNew, 1),
            ],
            // The specification's minimum mix (clause 5.2.3), New-Order taking the rest.
            Scenario::Tpcc => vec![
                (Operation::NewOrder, 45),
                (Operation::Payment, 43),
                (Operation::OrderStatus, 4),
                (Operation::Delivery, 4),
                (Operation::StockLevel, 4),
            ],
        }
    }

    /// Rows loaded when the plan names no count.
    pub fn default_rows(self) -> u64 {
        match self {
            Scenario::PointSelect => 10_000,
            Scenario::Churn => 100_000,
            // Warehouses.
            Scenario::Tpcc => 1,
        }
    }

    /// The table whose ids form the key space.
    pub fn table(self) -> &'static str {
        match self {
            Scenario::PointSelect => "sbtest1",
            Scenario::Churn => "customers",
            Scenario::Tpcc => "warehouse",
        }
    }
}

/// Which endpoint of a cluster an operation belongs on: a plan with a `reader` sends
/// reads there and writes to the writer (`target`); without one, everything goes to the
/// writer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Write,
    Read,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Write => "write",
            Role::Read => "read",
        }
    }
}

impl Operation {
    /// Whether it only reads (the model's scoring reads too: `will_churn` in a SELECT)
    /// or writes (inserts, updates, and the trigger-scored writes).
    pub fn role(self) -> Role {
        match self {
            Operation::PointSelect
            | Operation::ReadCustomer
            | Operation::PredictOne
            | Operation::ReadPrediction
            | Operation::PredictBatch
            | Operation::OrderStatus
            | Operation::StockLevel => Role::Read,
            Operation::InsertCustomer
            | Operation::UpdateUsage
            | Operation::ScoreNew
            | Operation::NewOrder
            | Operation::Payment
            | Operation::Delivery => Role::Write,
        }
    }

    pub const ALL: [Operation; 13] = [
        Operation::PointSelect,
        Operation::ReadCustomer,
        Operation::PredictOne,
        Operation::ReadPrediction,
        Operation::InsertCustomer,
        Operation::UpdateUsage,
        Operation::PredictBatch,
        Operation::ScoreNew,
        Operation::NewOrder,
        Operation::Payment,
        Operation::OrderStatus,
        Operation::Delivery,
        Operation::StockLevel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::PointSelect => "point_select",
            Operation::ReadCustomer => "read_customer",
            Operation::PredictOne => "predict_one",
            Operation::ReadPrediction => "read_prediction",
            Operation::InsertCustomer => "insert_customer",
            Operation::UpdateUsage => "update_usage",
            Operation::PredictBatch => "predict_batch",
            Operation::ScoreNew => "score_new",
            Operation::NewOrder => "new_order",
            Operation::Payment => "payment",
            Operation::OrderStatus => "order_status",
            Operation::Delivery => "delivery",
            Operation::StockLevel => "stock_level",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }
}

pub fn scenario_names() -> String {
    Scenario::ALL.map(Scenario::name).join(", ")
}
