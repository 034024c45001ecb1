//! Live control (`fleetload ctl`): status, set-rate, pause, resume, stop. A change
//! takes effect at the next interval boundary on every worker and is kept for the
//! report.

use super::shares::next_boundary;
use super::{since, Controller, Live, Now, State};
use fleetload_common::plan::LoadModel;
use fleetload_common::profile::Profile;
use fleetload_common::wire::{
    Command, CommandReply, IntervalStatus, LiveStatus, StatusChange, WorkerStatus,
};

impl Controller {
    pub(super) fn command(&mut self, command: Command, now: Now, live: &Live) -> CommandReply {
        let elapsed = since(now, live.start);
        let at = next_boundary(&self.config.plan, elapsed);
        let unit = self.unit();
        // Closed loop without stages runs every session: make that explicit first.
        let all_sessions = f64::from(self.config.plan.all_sessions())
            * self
                .slots
                .iter()
                .filter(|s| s.state == State::Running)
                .count() as f64;
        let current = self
            .cluster
            .clone()
            .unwrap_or_else(|| Profile::constant(all_sessions));
        match command {
            Command::Status => CommandReply {
                ok: true,
                message: String::new(),
                status: Some(self.status(elapsed)),
            },
            Command::SetRate(v) => {
                if unit == "sessions" && v > all_sessions {
                    return CommandReply::refused(format!("set-rate {v}: the fleet has {all_sessions} sessions open; closed-loop set-rate sets active sessions"));
                }
                if let Some(saved) = &mut self.paused {
                    *saved = Some(Profile::constant(v));
                    return CommandReply::ok(format!("paused; resume runs {v} {unit}"));
                }
                let before = current.value_at(at);
                self.cluster = Some(current.splice(at, &Profile::constant(v)));
                self.changed(
                    at,
                    format!("set-rate {v} {unit} (was {before:.1}) from {at:.1}s, by ctl"),
                )
            }
            Command::Pause => {
                if self.paused.is_some() {
                    return CommandReply::refused("already paused");
                }
                self.paused = Some(self.cluster.clone());
                self.cluster = Some(current.splice(at, &Profile::constant(0.0)));
                self.changed(at, format!("paused from {at:.1}s, by ctl"))
            }
            Command::Resume => {
                let Some(saved) = self.paused.take() else {
                    return CommandReply::refused("not paused");
                };
                let resumed = saved.unwrap_or_else(|| Profile::constant(all_sessions));
                self.cluster = Some(current.splice(at, &resumed));
                let what = format!(
                    "resumed at {:.1} {unit} from {at:.1}s, by ctl",
                    resumed.value_at(at)
                );
                self.changed(at, what)
            }
            Command::Stop(reason) => {
                let why = if reason.is_empty() {
                    "stopped by ctl".to_string()
                } else {
                    format!("stopped by ctl: {reason}")
                };
                self.stop_request = Some(why.clone());
                CommandReply::ok(why)
            }
        }
    }

    fn unit(&self) -> &'static str {
        match self.config.plan.load {
            LoadModel::Open { .. } => "ops/s",
            LoadModel::Closed { .. } => "sessions",
        }
    }

    /// Keep a change of the load for the report and send every worker its new share.
    fn changed(&mut self, at: f64, what: String) -> CommandReply {
        tracing::info!("{what}");
        self.changes.push(fleetload_report::Membership {
            t_s: at,
            event: what.clone(),
        });
        self.push_load(at);
        CommandReply::ok(what)
    }

    fn status(&self, elapsed: f64) -> LiveStatus {
        let plan = &self.config.plan;
        LiveStatus {
            run_id: self.run_id.clone(),
            state: if self.paused.is_some() {
                "paused"
            } else {
                "running"
            }
            .into(),
            elapsed_s: (elapsed * 10.0).round() / 10.0,
            duration_s: plan.duration.as_secs_f64(),
            target: fleetload_common::target::redact(plan.target.url()),
            scenario: plan.scenario.name().to_string(),
            unit: self.unit().into(),
            planned_now: self.cluster.as_ref().map(|c| c.value_at(elapsed)),
            workers: self
                .slots
                .iter()
                .map(|s| WorkerStatus {
                    name: s.hello.name.clone(),
                    state: format!("{:?}", s.state).to_lowercase(),
                    share: s.share,
                })
                .collect(),
            last_interval: self.last_progress.as_ref().map(|p| IntervalStatus {
                ok_per_s: p.ok_per_s,
                p50_ms: p.p50_ms,
                p99_ms: p.p99_ms,
                errors: p.errors,
                dropped: p.dropped,
            }),
            changes: self
                .changes
                .iter()
                .map(|c| StatusChange {
                    t_s: c.t_s,
                    event: c.event.clone(),
                })
                .collect(),
        }
    }
}
