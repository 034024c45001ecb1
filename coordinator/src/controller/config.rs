//! What the controller decides with, apart from what the shell owns. The run's own
//! settings ([`RunConfig`]) and the few facts about the shell that change a decision
//! ([`Outputs`]): whether checkpoints are written (snapshots are then acknowledged only
//! once one holds them), whether a dashboard or metrics are served (so the core
//! prepares their updates, as effects), and the address workers dial. The shell's
//! handles (progress channel, metrics registry, dashboard hub, checkpoint directory,
//! TLS) never reach the core.

use crate::search::SearchSpec;
use fleetload_common::plan::Plan;
use fleetload_db::PrepareSpec;
use std::time::Duration;

/// The run the controller conducts.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub plan: Plan,
    /// Workers to wait for.
    pub workers: usize,
    /// Workers the run admits in all: those beyond `workers` join while it runs and get
    /// a share from the next interval on.
    pub max_workers: usize,
    /// How long to wait for them.
    pub join_timeout: Duration,
    /// Lead between sending the start instant and the start itself.
    pub start_lead: Duration,
    /// Prepare the data through the fleet first: the coordinator creates the table,
    /// every worker loads its shard, the coordinator finishes the table.
    pub prepare: Option<PrepareSpec>,
    /// Search for the highest rate that meets these SLOs instead of following the
    /// plan's load (`fleetload find-capacity`).
    pub search: Option<SearchSpec>,
    /// The run's id, chosen before it starts so that a run which fails before its
    /// start still writes its report where it would have.
    pub run_id: String,
}

impl RunConfig {
    pub fn new(plan: Plan, workers: usize, run_id: String) -> Self {
        RunConfig {
            plan,
            workers,
            max_workers: workers,
            join_timeout: Duration::from_secs(60),
            start_lead: Duration::from_millis(500),
            prepare: None,
            search: None,
            run_id,
        }
    }
}

/// What the shell serves, as far as the core's decisions go.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outputs {
    /// Checkpoints are written: acknowledge a snapshot only once a checkpoint holds it.
    pub checkpoints: bool,
    /// A dashboard is served: publish its frames ([`super::Effect::Publish`]).
    pub dashboard: Option<Dashboard>,
    /// Metrics are served: count into them ([`super::Effect::Metrics`]).
    pub metrics: bool,
    /// Where workers dial this coordinator, as `fleetload worker --coordinator` takes
    /// it, for messages that tell the user to start more.
    pub dial: String,
}

/// The dashboard, as its start frame describes it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Dashboard {
    /// Viewers must give the token to use the controls.
    pub needs_token: bool,
}
