//! The workload of a run as a plan names it: one of the built-in scenarios, or a user's
//! scenario file. Its own module, below both `scenario` and `scenario_file`, so neither
//! of those imports the other.

use crate::scenario::{OpName, Operation, Role, Scenario};
use crate::scenario_file::ScenarioFile;
use std::sync::Arc;

/// The workload of a run: a built-in scenario or a user's scenario file.
#[derive(Debug, Clone, PartialEq)]
pub enum ScenarioRef {
    Builtin(Scenario),
    File(Arc<ScenarioFile>),
}

impl ScenarioRef {
    pub fn name(&self) -> &str {
        match self {
            ScenarioRef::Builtin(s) => s.name(),
            ScenarioRef::File(f) => &f.name,
        }
    }

    pub fn builtin(&self) -> Option<Scenario> {
        match self {
            ScenarioRef::Builtin(s) => Some(*s),
            ScenarioRef::File(_) => None,
        }
    }

    /// Every operation the scenario can run.
    pub fn operations(&self) -> Vec<OpName> {
        match self {
            ScenarioRef::Builtin(s) => s.operations().iter().map(|o| OpName::from(*o)).collect(),
            ScenarioRef::File(f) => f.operations.iter().map(|o| o.name.clone()).collect(),
        }
    }

    /// The role of the operation named `op` (write when it is not one of this
    /// scenario's: the writer is where anything can run).
    pub fn role_of(&self, op: &OpName) -> Role {
        match self {
            ScenarioRef::Builtin(_) => op.builtin().map_or(Role::Write, Operation::role),
            ScenarioRef::File(f) => f
                .operations
                .iter()
                .find(|o| o.name == *op)
                .map_or(Role::Write, |o| o.role),
        }
    }

    /// The mix used when the plan names none.
    pub fn default_mix(&self) -> Vec<(OpName, u32)> {
        match self {
            ScenarioRef::Builtin(s) => s
                .default_mix()
                .into_iter()
                .map(|(o, w)| (o.into(), w))
                .collect(),
            ScenarioRef::File(f) => f
                .operations
                .iter()
                .filter(|o| o.weight > 0)
                .map(|o| (o.name.clone(), o.weight))
                .collect(),
        }
    }

    /// Keys when the plan names no row count.
    pub fn default_rows(&self) -> u64 {
        match self {
            ScenarioRef::Builtin(s) => s.default_rows(),
            ScenarioRef::File(f) => f.rows.unwrap_or(10_000),
        }
    }
}
