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
    ReadCustomer,
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
            Scenario::Churn => &[Operation::ReadCustomer],
        }
    }

    /// The mix used when the plan names none.
    pub fn default_mix(self) -> Vec<(Operation, u32)> {
        self.operations().iter().map(|op| (*op, 1)).collect()
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
    pub const ALL: [Operation; 2] = [Operation::PointSelect, Operation::ReadCustomer];

    pub fn name(self) -> &'static str {
        match self {
            Operation::PointSelect => "point_select",
            Operation::ReadCustomer => "read_customer",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }
}

pub fn scenario_names() -> String {
    Scenario::ALL.map(Scenario::name).join(", ")
}
