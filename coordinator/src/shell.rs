//! The run controller's shell: one task that feeds the worker streams' events, the
//! time and the operator's interrupt to the pure core ([`crate::controller`]) and does
//! what it asks: sending on the streams, answering `ctl`, the target database's work
//! between phases, and sampling the database's counters while the run runs.

use crate::controller::{
    Controller, Dashboard, Effect, Input, Now, Outputs, PlanUpdate, RunConfig, TargetStep,
};
use crate::error::CoordinatorError;
use crate::service::{Event, Outbox};
use fleetload_common::plan::Plan;
use fleetload_common::wire::{to_worker, CommandReply};
use fleetload_report::Report;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use crate::controller::Progress;

/// How the coordinator runs a plan.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// The run itself: what the controller decides with.
    pub run: RunConfig,
    /// Receives one line per closed interval, for a live display.
    pub progress: Option<mpsc::UnboundedSender<Progress>>,
    /// Counters and gauges for the Prometheus endpoint, when one is served.
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// TLS and token of the control channel.
    pub security: crate::security::ServerSecurity,
    /// Where the run's checkpoints go (every `plan.checkpoint`): `None`, none are
    /// written, and snapshots are acknowledged as soon as they are merged.
    pub checkpoint: Option<CheckpointTo>,
    /// The live dashboard's hub, when one is served (`--ui-listen`).
    pub ui: Option<std::sync::Arc<crate::ui::Hub>>,
    /// The address the control service listens on (set by [`crate::run()`]), for
    /// messages that tell workers where to dial.
    pub listen_addr: Option<std::net::SocketAddr>,
}

/// The report directory a run checkpoints into.
#[derive(Debug, Clone)]
pub enum CheckpointTo {
    /// This directory.
    Dir(std::path::PathBuf),
    /// A directory named for the run inside this one (the default report layout).
    PerRun(std::path::PathBuf),
}

impl CheckpointTo {
    /// The directory of run `run_id`.
    pub fn dir(&self, run_id: &str) -> std::path::PathBuf {
        match self {
            CheckpointTo::Dir(d) => d.clone(),
            CheckpointTo::PerRun(d) => d.join(run_id),
        }
    }
}

impl CoordinatorConfig {
    pub fn new(plan: Plan, workers: usize) -> Self {
        CoordinatorConfig {
            run: RunConfig::new(plan, workers, new_run_id()),
            progress: None,
            metrics: None,
            security: crate::security::ServerSecurity::default(),
            checkpoint: None,
            ui: None,
            listen_addr: None,
        }
    }

    /// What the controller learns of the shell.
    fn outputs(&self) -> Outputs {
        Outputs {
            checkpoints: self.checkpoint.is_some(),
            dashboard: self.ui.as_ref().map(|hub| Dashboard {
                needs_token: hub.needs_token(),
            }),
            metrics: self.metrics.is_some(),
            dial: self.dial_address(),
        }
    }

    /// Where workers dial this coordinator, as `fleetload worker --coordinator` takes it.
    pub fn dial_address(&self) -> String {
        let scheme = if self.security.tls().is_some() {
            "https"
        } else {
            "http"
        };
        match self.listen_addr {
            Some(a) if a.ip().is_unspecified() => {
                format!("{scheme}://<this host's address>:{}", a.port())
            }
            Some(a) => format!("{scheme}://{a}"),
            None => format!("{scheme}://<this host's address>:<port>"),
        }
    }
}

/// The target could not be inspected before the start: only an error when the plan
/// names stand-in settings that must be set; otherwise the workers' pre-flight says what
/// is missing.
fn unreachable_target(plan: &Plan, e: String) -> Result<(), CoordinatorError> {
    if plan.standin.is_empty() {
        tracing::debug!(error = %e, "cannot inspect the target; the workers check it");
        return Ok(());
    }
    Err(CoordinatorError::StandIn {
        target: plan.target.to_string(),
        reason: e,
    })
}

fn new_run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    format!(
        "run-{}-{:04x}",
        stamp.trim_end_matches('Z'),
        now.subsec_nanos() & 0xffff
    )
}

/// Run the plan: feed the core until it finishes, and build the report.
pub(crate) async fn drive(
    config: CoordinatorConfig,
    mut events: mpsc::Receiver<Event>,
    shutdown: CancellationToken,
) -> Result<Report, CoordinatorError> {
    let mut shell = Shell {
        progress: config.progress.clone(),
        prepare: config.run.prepare.clone(),
        metrics: config.metrics.clone(),
        outboxes: HashMap::new(),
        replies: HashMap::new(),
        next_reply: 0,
        schema: None,
        sampler: None,
        cloudwatch: None,
        checkpoint_to: config.checkpoint.clone(),
        ui: config.ui.clone(),
        checkpoints: tokio::task::JoinSet::new(),
    };
    let outputs = config.outputs();
    let mut core = Controller::new(config.run, outputs, Now::read());
    let mut interrupted = false;
    loop {
        let deadline = core.next_deadline();
        let input = tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => shell.input(ev),
                None => Input::ServiceStopped,
            },
            _ = sleep_until(deadline) => Input::Tick,
            Some(written) = shell.checkpoints.join_next() => match written {
                Ok(input) => input,
                Err(e) => Input::Checkpointed(Err(format!("the checkpoint writer failed: {e}"))),
            },
            _ = shutdown.cancelled(), if !interrupted => {
                interrupted = true;
                Input::Interrupted
            }
        };
        let mut effects = core.handle(Now::read(), input);
        while !effects.is_empty() {
            let mut next = Vec::new();
            for effect in effects {
                if let Some(done) = shell.perform(effect, &core, &mut next).await {
                    return done;
                }
            }
            effects = next
                .into_iter()
                .flat_map(|input| core.handle(Now::read(), input))
                .collect();
        }
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// What the shell owns: the streams' outboxes, the pending `ctl` answers, the target's
/// connection while the fleet prepares it, and the counter sampler.
struct Shell {
    progress: Option<mpsc::UnboundedSender<Progress>>,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    prepare: Option<fleetload_db::PrepareSpec>,
    outboxes: HashMap<u64, Outbox>,
    replies: HashMap<u64, oneshot::Sender<CommandReply>>,
    next_reply: u64,
    /// The table the coordinator created, finished once every worker loaded its shard.
    schema: Option<fleetload_db::session::Session>,
    sampler: Option<(
        CancellationToken,
        tokio::task::JoinHandle<fleetload_report::counters::DatabaseCounters>,
    )>,
    /// The CloudWatch poller, when the plan names `[cloudwatch]`.
    cloudwatch: Option<(
        CancellationToken,
        tokio::task::JoinHandle<fleetload_report::cloudwatch::CloudWatchJson>,
    )>,
    /// Where checkpoints go, and the one being written (off the controller's task: it
    /// encodes every histogram).
    checkpoint_to: Option<CheckpointTo>,
    checkpoints: tokio::task::JoinSet<Input>,
    ui: Option<std::sync::Arc<crate::ui::Hub>>,
}

impl Shell {
    /// An event of the service as the core's input; the shell keeps what is I/O (the
    /// outbox of a stream, the reply channel of a command).
    fn input(&mut self, ev: Event) -> Input {
        match ev {
            Event::Joined(j) => {
                self.outboxes.insert(j.conn, j.outbox);
                Input::Joined(crate::controller::Arrival {
                    conn: j.conn,
                    hello: j.hello,
                    peer: j.peer,
                    cert: j.cert,
                })
            }
            Event::Message { conn, message } => Input::Message { conn, message },
            Event::Invalid { conn, error } => Input::Invalid { conn, error },
            Event::Unauthorized { peer } => Input::Unauthorized { peer },
            Event::Closed { conn, error } => {
                self.outboxes.remove(&conn);
                Input::Closed { conn, error }
            }
            Event::Command { command, reply } => {
                let id = self.next_reply;
                self.next_reply += 1;
                self.replies.insert(id, reply);
                Input::Command { id, command }
            }
        }
    }

    /// Do what the core asks; inputs it causes go to `next`. Returns the run's result
    /// once the core finished.
    async fn perform(
        &mut self,
        effect: Effect,
        core: &Controller,
        next: &mut Vec<Input>,
    ) -> Option<Result<Report, CoordinatorError>> {
        match effect {
            Effect::Send { conn, message } => {
                if let Some(outbox) = self.outboxes.get(&conn) {
                    // Never block the controller on one slow worker; acks are
                    // cumulative and the other messages are few.
                    let _ = outbox.try_send(Ok(to_worker(&message)));
                }
            }
            Effect::Close { conn, last } => {
                if let Some(outbox) = self.outboxes.remove(&conn) {
                    let _ = outbox.try_send(Ok(to_worker(&last)));
                }
            }
            Effect::Reply { id, reply } => {
                if let Some(tx) = self.replies.remove(&id) {
                    let _ = tx.send(reply);
                }
            }
            Effect::Progress(p) => {
                if let Some(tx) = &self.progress {
                    let _ = tx.send(p);
                }
            }
            Effect::Publish { event, json } => {
                if let Some(hub) = &self.ui {
                    hub.publish_json(event, json);
                }
            }
            Effect::Metrics(update) => {
                if let Some(m) = &self.metrics {
                    m.apply(update);
                }
            }
            Effect::Target(step) => {
                next.push(Input::TargetDone(self.target(step, core.plan()).await));
            }
            Effect::Started {
                start,
                start_unix_nanos,
            } => {
                if let Some(cw) = core.plan().cloudwatch.clone() {
                    let stop = CancellationToken::new();
                    let wall = std::time::UNIX_EPOCH
                        + std::time::Duration::from_nanos(
                            u64::try_from(start_unix_nanos).unwrap_or(0),
                        );
                    let poller = tokio::spawn(crate::cloudwatch::run(
                        cw,
                        wall,
                        stop.clone(),
                        self.ui.clone(),
                    ));
                    self.cloudwatch = Some((stop, poller));
                }
                if let Some(hub) = &self.ui {
                    hub.publish("start", &core.ui_start());
                }
                let stop = CancellationToken::new();
                let sampler = tokio::spawn(crate::counters::run(
                    core.plan().clone(),
                    tokio::time::Instant::from_std(start),
                    stop.clone(),
                    self.ui.clone(),
                ));
                self.sampler = Some((stop, sampler));
            }
            Effect::Checkpoint { outcome, acks } => {
                if let Some(to) = &self.checkpoint_to {
                    let dir = to.dir(&outcome.run_id);
                    self.checkpoints.spawn_blocking(move || {
                        let written = fleetload_report::checkpoint::Checkpoint::of(
                            &outcome,
                            fleetload_report::checkpoint::Stage::Running,
                            None,
                        )
                        .write(&dir);
                        Input::Checkpointed(written.map(|_| acks).map_err(|e| e.to_string()))
                    });
                }
            }
            Effect::Finished(result) => return Some(self.finished(*result).await),
        }
        None
    }

    async fn finished(
        &mut self,
        result: Result<fleetload_report::RunRecord, CoordinatorError>,
    ) -> Result<Report, CoordinatorError> {
        let counters = match self.sampler.take() {
            Some((stop, sampler)) => {
                stop.cancel();
                match sampler.await {
                    Ok(c) => c,
                    Err(e) => fleetload_report::counters::DatabaseCounters {
                        unavailable: Some(format!("the sampler failed: {e}")),
                        ..Default::default()
                    },
                }
            }
            None => Default::default(),
        };
        // The last CloudWatch fetch runs while the rest finishes; it is bounded.
        let cloudwatch = self.cloudwatch.take().map(|(stop, poller)| {
            stop.cancel();
            poller
        });
        if let Some(session) = self.schema.take() {
            session.close().await;
        }
        // A checkpoint still being written finishes before the final one replaces it.
        while self.checkpoints.join_next().await.is_some() {}
        let outcome = result?;
        if let Some(to) = self
            .checkpoint_to
            .as_ref()
            .filter(|_| outcome.plan.checkpoint.is_some())
        {
            let dir = to.dir(&outcome.run_id);
            let checkpoint = fleetload_report::checkpoint::Checkpoint::of(
                &outcome,
                fleetload_report::checkpoint::Stage::Final,
                Some(&counters),
            );
            // The final checkpoint lets `report recover` add spools onto a finished run.
            if let Err(e) = checkpoint.write(&dir) {
                tracing::warn!(error = %e, "cannot write the final checkpoint");
            }
        }
        let mut report = outcome.report(counters);
        if let Some(poller) = cloudwatch {
            report.cloudwatch = Some(poller.await.unwrap_or_else(|e| {
                fleetload_report::cloudwatch::CloudWatchJson {
                    notes: vec![format!("the CloudWatch poller failed: {e}")],
                    ..Default::default()
                }
            }));
        }
        if let Some(hub) = &self.ui {
            hub.finished(&report);
        }
        Ok(report)
    }

    /// The target work between phases.
    async fn target(
        &mut self,
        step: TargetStep,
        plan: &Plan,
    ) -> Result<PlanUpdate, CoordinatorError> {
        match (step, &self.prepare) {
            (TargetStep::BeforeAssign, Some(spec)) => {
                tracing::info!(
                    rows = spec.rows,
                    "creating the table; every worker loads its shard"
                );
                self.schema = Some(fleetload_db::prepare::create_schema(spec).await?);
                Ok(PlanUpdate::default())
            }
            // Before the workers are assigned and open their sessions: the key space
            // decides the shards, and SQLite's stand-in reads its settings when a
            // session opens.
            (TargetStep::BeforeAssign, None) => inspect_target(plan, true).await,
            (TargetStep::AfterReady, Some(spec)) => {
                if let Some(mut session) = self.schema.take() {
                    fleetload_db::prepare::finish_prepare(spec, &mut session).await?;
                    session.close().await;
                }
                // The fleet just loaded `rows`: the key space is the plan's.
                inspect_target(plan, false).await
            }
            (TargetStep::AfterReady, None) => Ok(PlanUpdate::default()),
        }
    }
}

/// Before the workers open their sessions, on one connection of the coordinator's:
/// a built-in scenario's plan that does not name `rows` takes the table's key space
/// (the default of a few thousand rows on a table of millions would read a sliver of
/// it and look faster than it is), and the churn stand-in gets the settings the plan
/// names, and the report the ones in force. Only named settings need the database:
/// otherwise a coordinator that cannot reach it (no password on its host) runs on,
/// and the workers' own pre-flight says what is missing.
async fn inspect_target(plan: &Plan, take_key_space: bool) -> Result<PlanUpdate, CoordinatorError> {
    use fleetload_common::plan::{MlMode, StandIn};
    use fleetload_common::scenario::Scenario;
    let key_space = plan
        .scenario
        .builtin()
        .filter(|_| take_key_space && !plan.rows_given);
    let standin =
        plan.scenario.builtin() == Some(Scenario::Churn) && matches!(plan.ml, MlMode::StandIn);
    if key_space.is_none() && !standin {
        return Ok(PlanUpdate::default());
    }
    let connect =
        fleetload_db::connect::ConnectSpec::new(plan.target.clone(), plan.connect_timeout);
    let mut session = match connect {
        Ok(spec) => match spec.connect().await {
            Ok(s) => s,
            // A server that does not answer would make every worker wait out the same
            // deadline again: say so now, once.
            Err(e @ fleetload_db::connect::ConnectError::Timeout { .. }) => {
                return Err(CoordinatorError::TargetSilent {
                    message: e.to_string(),
                })
            }
            Err(e) => {
                return unreachable_target(plan, e.to_string()).map(|()| PlanUpdate::default())
            }
        },
        Err(e) => return unreachable_target(plan, e.to_string()).map(|()| PlanUpdate::default()),
    };
    let highest = match key_space {
        Some(scenario) => fleetload_db::workloads::builtin::key_space(&mut session, scenario)
            .await
            .ok()
            .flatten()
            .filter(|n| *n > 0),
        None => None,
    };
    let ml = if standin {
        Some(fleetload_db::ml::configure(&mut session, plan.target.driver(), &plan.standin).await)
    } else {
        None
    };
    session.close().await;
    let mut update = PlanUpdate::default();
    if let (Some(n), Some(scenario)) = (highest, key_space) {
        tracing::info!(
            rows = n,
            table = scenario.table(),
            "the plan names no rows: the key space is the table's, 1..={n}"
        );
        update.rows = Some(n);
    }
    match ml {
        Some(Ok(ml)) => {
            tracing::info!(delay = ?ml.overhead, row_cost = ?ml.row_cost, capacity = ml.capacity, "ML stand-in settings in force");
            update.standin = Some(StandIn {
                delay: Some(ml.overhead),
                row_cost: Some(ml.row_cost),
                capacity: Some(ml.capacity),
            });
            Ok(update)
        }
        Some(Err(e)) => unreachable_target(plan, e).map(|()| update),
        None => Ok(update),
    }
}
