//! TPC-C's figures from a finished report: tpmC from the clients, NOPM from the
//! database (the change of the districts' `D_NEXT_O_ID`, which the coordinator samples
//! with the other counters), the two compared over the whole run, the mix, rollbacks
//! and remote transactions.

use super::Report;
use fleetload_common::tpcc::MAX_TPMC_PER_WAREHOUSE;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `tpcc` section of report.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TpccJson {
    pub warehouses: u64,
    /// New-Orders committed per minute of the measured window, as the clients counted.
    #[serde(rename = "tpmC")]
    pub tpmc: f64,
    /// The same from the database: the change of Σ D_NEXT_O_ID over the measured window
    /// (from the sample at the warm-up's end to the one after the run), per minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nopm: Option<f64>,
    /// tpmC against the specification's 12.86 per warehouse, %: only with keying and
    /// think times (`tpcc_wait`), without which it means nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub efficiency_percent: Option<f64>,
    /// New-Orders committed over the whole run (warm-up included): the clients' count
    /// and the database's. They must be equal.
    pub new_orders_committed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_new_orders: Option<i64>,
    /// Whether the two counts can be compared: every worker's measurements merged (a
    /// lost worker's last transactions may be in the database and not the report).
    pub comparable: bool,
    /// New-Orders rolled back on an unused item (the specification's 1 %), measured.
    pub rollbacks: u64,
    pub rollback_percent: f64,
    /// Each transaction's share of the measured transactions, %.
    pub mix_percent: BTreeMap<String, f64>,
    /// Measured transactions that touched another warehouse, by type.
    pub remote: BTreeMap<String, u64>,
    /// Deadlocks and serialization failures retried, measured.
    pub retries: u64,
}

impl TpccJson {
    /// How the clients' and the database's counts compare, in words.
    pub fn verdict(&self) -> &'static str {
        match self.database_new_orders {
            Some(_) if !self.comparable => "not comparable: a worker's measurements are missing",
            Some(n) if i64::try_from(self.new_orders_committed).ok() == Some(n) => "agree",
            Some(_) => "DISAGREE",
            None => "not compared",
        }
    }

    /// Why the clients' and the database's counts disagree, when they do.
    pub fn disagreement(&self) -> Option<String> {
        match self.database_new_orders.filter(|_| self.comparable) {
            Some(db) if i64::try_from(self.new_orders_committed).ok() != Some(db) => Some(format!(
                "TPC-C: the clients committed {} New-Orders over the run, the database {} (the change of sum(D_NEXT_O_ID)): another writer, or a commit whose outcome a client did not learn",
                self.new_orders_committed, db
            )),
            _ => None,
        }
    }
}

/// The figures of a TPC-C run's report (`None` for other scenarios).
pub(crate) fn summary(r: &Report) -> Option<TpccJson> {
    if r.plan.scenario.as_deref() != Some("tpcc") {
        return None;
    }
    let warehouses = r.plan.rows.unwrap_or(1).max(1);
    let minutes = (r.measured_s / 60.0).max(1e-9);
    let measured = &r.operations;
    let name =
        fleetload_common::scenario::OpName::from(fleetload_common::scenario::Operation::NewOrder);
    let new_order = measured.get(&name);
    let committed_measured = new_order.map_or(0, |s| s.count - s.rolled_back);
    let rollbacks = new_order.map_or(0, |s| s.rolled_back);
    // The whole run: every interval, warm-up included.
    let new_orders_committed: u64 = r
        .intervals
        .iter()
        .filter_map(|i| i.operations.get(&name))
        .map(|s| s.count - s.rolled_back)
        .sum();
    let counter = fleetload_common::tpcc::NEW_ORDERS_COUNTER;
    let samples = &r.database_counters.samples;
    let database_new_orders = r
        .database_counters
        .deltas
        .get(counter)
        .copied()
        .or_else(|| {
            // A delta of zero is left out of `deltas`; both ends present means zero.
            let first = samples.first()?.values.get(counter)?;
            let last = samples.last()?.values.get(counter)?;
            Some(last - first)
        });
    let nopm = {
        // The last sample taken by the end of the warm-up (without one: the one before
        // the start).
        let at_warmup = samples
            .iter()
            .take_while(|s| s.t_s <= r.warmup_s + 0.05)
            .last()
            .and_then(|s| s.values.get(counter));
        let last = samples.last().and_then(|s| s.values.get(counter));
        match (at_warmup, last) {
            (Some(a), Some(b)) => Some(round1((b - a) as f64 / minutes)),
            _ => None,
        }
    };
    let total: u64 = measured.values().map(|s| s.count).sum();
    let tpmc = round1(committed_measured as f64 / minutes);
    Some(TpccJson {
        warehouses,
        tpmc,
        nopm,
        efficiency_percent: r
            .plan
            .tpcc_wait
            .unwrap_or(false)
            .then(|| round1(tpmc / (MAX_TPMC_PER_WAREHOUSE * warehouses as f64) * 100.0)),
        new_orders_committed,
        database_new_orders,
        comparable: r.verification.merged_equals_executed == Some(true),
        rollbacks,
        rollback_percent: round1(
            rollbacks as f64 * 100.0 / new_order.map_or(0, |s| s.count).max(1) as f64,
        ),
        mix_percent: measured
            .iter()
            .map(|(op, s)| {
                (
                    op.to_string(),
                    round1(s.count as f64 * 100.0 / total.max(1) as f64),
                )
            })
            .collect(),
        remote: measured
            .iter()
            .filter(|(_, s)| s.remote > 0)
            .map(|(op, s)| (op.to_string(), s.remote))
            .collect(),
        retries: measured.values().map(|s| s.retries).sum(),
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
