//! The built-in scenarios and their operations. Names here are the names users write in
//! plans and read in reports, so they are stable.

use serde::Serialize;

/// A workload: a schema, its data and a set of operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// sysbench's `sbtest1` table and `SELECT c FROM sbtest1 WHERE id=?`.
    PointSelect,
    /// The telco-churn `customers` table (Aurora ML flagship scenario).
    Churn,
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
}

impl Scenario {
    pub const ALL: [Scenario; 2] = [Scenario::PointSelect, Scenario::Churn];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::PointSelect => "point_select",
            Scenario::Churn => "churn",
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
        }
    }

    /// Rows loaded when the plan names no count.
    pub fn default_rows(self) -> u64 {
        match self {
            Scenario::PointSelect => 10_000,
            Scenario::Churn => 100_000,
        }
    }

    /// The table whose ids form the key space.
    pub fn table(self) -> &'static str {
        match self {
            Scenario::PointSelect => "sbtest1",
            Scenario::Churn => "customers",
        }
    }
}

impl Operation {
    pub const ALL: [Operation; 8] = [
        Operation::PointSelect,
        Operation::ReadCustomer,
        Operation::PredictOne,
        Operation::ReadPrediction,
        Operation::InsertCustomer,
        Operation::UpdateUsage,
        Operation::PredictBatch,
        Operation::ScoreNew,
    ];

    /// Whether the operation calls the ML function (directly or through a trigger).
    pub fn uses_ml(self) -> bool {
        matches!(
            self,
            Operation::PredictOne | Operation::InsertCustomer | Operation::UpdateUsage
        )
    }

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
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }
}

pub fn scenario_names() -> String {
    Scenario::ALL.map(Scenario::name).join(", ")
}
