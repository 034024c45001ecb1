//! One time base: every worker's clock offset, estimated NTP-style before the start
//! (and for a late joiner before its own start), and the start instant each worker is
//! sent on its own clock.

use super::{
    Controller, Effect, Input, Live, Now, Phase, LATE_PROBES, PROBE_PACE, PROBE_ROUNDS, PROBE_WAIT,
    PROBE_WINDOW,
};
use crate::metrics::MetricsUpdate;
use fleetload_common::plan::LoadModel;
use fleetload_common::wire::{FromWorker, ToWorker};
use fleetload_report::merge::Merge;

impl Controller {
    /// Round `round` of clock probes: every worker is probed, at most
    /// [`PROBE_WINDOW`] at a time, keeping each worker's sample with the lowest round
    /// trip (its offset error is at most half of it). Probes sent to a whole fleet at
    /// once queue behind each other on the way out and their echoes on the way back,
    /// and the round trips (and the offsets' error) grow with the fleet.
    pub(super) fn probe_round(&mut self, now: Now, round: u64) {
        if round >= PROBE_ROUNDS {
            self.log_clocks();
            return self.start_run(now);
        }
        self.phase = Phase::ClockSync { round };
        let n = self.slots.len();
        self.phase_deadline =
            Some(now.at + PROBE_WAIT + PROBE_PACE * u32::try_from(n).unwrap_or(u32::MAX));
        self.answered = vec![false; n];
        self.probe_next = 0;
        for _ in 0..PROBE_WINDOW {
            self.probe_next_worker(now, round);
        }
    }

    /// Probe the next worker of this round, if any is left.
    fn probe_next_worker(&mut self, now: Now, round: u64) {
        let i = self.probe_next;
        if i >= self.slots.len() {
            return;
        }
        self.probe_next += 1;
        self.slots[i].probe_sent = Some(now.unix_nanos);
        self.send(
            i,
            ToWorker::TimeProbe {
                id: round,
                coordinator_send_unix_nanos: now.unix_nanos,
            },
        );
    }

    pub(super) fn clock_sync(&mut self, now: Now, round: u64, input: Input) {
        match input {
            Input::Message {
                conn,
                message: FromWorker::TimeEcho(echo),
            } => {
                let Some(i) = self.slot_index(conn) else {
                    return;
                };
                if echo.id != round {
                    return;
                }
                self.answered[i] = true;
                if let Err(r) = self.slots[i].clock_echo(&echo, now) {
                    self.slots[i].refuse(r);
                }
                if self.answered.iter().all(|a| *a) {
                    self.probe_round(now, round + 1);
                } else {
                    self.probe_next_worker(now, round);
                }
            }
            Input::Tick if self.phase_deadline.is_some_and(|d| now.at >= d) => {
                self.probe_round(now, round + 1);
            }
            other => self.before_start(other, "before the start"),
        }
    }

    fn log_clocks(&self) {
        for s in &self.slots {
            match s.clock {
                Some((offset, rtt)) => {
                    tracing::info!(worker = %s.hello.name, offset_ms = offset as f64 / 1e6, rtt_ms = rtt as f64 / 1e6, "clock");
                }
                None => {
                    tracing::warn!(worker = %s.hello.name, "no clock sample: its start uses our clock as is");
                }
            }
        }
    }

    /// Send every worker the start instant, `start_lead` from now, on its own clock.
    fn start_run(&mut self, now: Now) {
        let plan = self.config.plan.clone();
        if self.outputs.metrics {
            self.effects.push(Effect::Metrics(MetricsUpdate::Run(
                crate::metrics::RunFacts {
                    run_id: self.run_id.clone(),
                    scenario: plan.scenario.name().to_string(),
                    target: plan.target.url().to_string(),
                    workers: self.config.workers,
                    duration: plan.duration,
                    target_rate: match plan.load {
                        LoadModel::Open { rate, .. } => Some(rate),
                        LoadModel::Closed { .. } => None,
                    },
                    roles: plan
                        .mix
                        .iter()
                        .map(|(op, _)| op.clone())
                        .zip(plan.roles())
                        .collect(),
                },
            )));
        }
        let start = now.after(self.config.start_lead);
        for i in 0..self.slots.len() {
            let s = &mut self.slots[i];
            s.state = super::State::Running;
            s.last_heard = now.at;
            let at = start.unix_nanos.saturating_add(s.offset());
            self.send(
                i,
                ToWorker::Start {
                    start_unix_nanos: at,
                },
            );
        }
        tracing::info!(run = %self.run_id, "started");
        let warmup_intervals = (plan.warmup.as_nanos() / plan.interval.as_nanos()) as u64;
        let live = Live {
            merge: Merge::new(
                plan.mix.iter().map(|(op, _)| op.clone()).collect(),
                warmup_intervals,
            ),
            start: start.at,
            start_nanos: start.unix_nanos,
            failures: Vec::new(),
            interrupted: false,
            next_close: 0,
            stopped_at: None,
            // Workers finish within an operation's deadline of the end, or rejoin
            // within their window (and a lease for the dial to land).
            deadline: start.at
                + plan.duration
                + (plan.op_timeout + std::time::Duration::from_secs(15))
                    .max(plan.rejoin.unwrap_or_default() + plan.lease * 2),
            next_heartbeat: now.at,
            next_checkpoint: self
                .checkpointed
                .as_ref()
                .and(plan.checkpoint)
                .map(|every| start.at + every),
            checkpoint_pending: false,
        };
        self.phase = Phase::Running;
        self.phase_deadline = None;
        self.effects.push(super::Effect::Started {
            start: start.at,
            start_unix_nanos: start.unix_nanos,
        });
        for a in std::mem::take(&mut self.waiting) {
            self.admit(a, now, &live);
        }
        self.live = Some(Box::new(live));
    }

    /// A late joiner with its sessions open: probe its clock, then start it.
    pub(super) fn probe_late(&mut self, i: usize, now: Now) {
        let s = &mut self.slots[i];
        s.state = super::State::Ready;
        s.probe_sent = Some(now.unix_nanos);
        s.late_probes = Some((0, now.at));
        for id in 0..LATE_PROBES {
            self.send(
                i,
                ToWorker::TimeProbe {
                    id,
                    coordinator_send_unix_nanos: now.unix_nanos,
                },
            );
        }
    }

    /// A late joiner's clock echo; with all of them in, it starts.
    pub(super) fn late_echo(
        &mut self,
        i: usize,
        echo: &fleetload_common::wire::TimeEcho,
        now: Now,
        live: &Live,
    ) {
        let s = &mut self.slots[i];
        let Some((got, since)) = s.late_probes else {
            return;
        };
        if let Err(r) = s.clock_echo(echo, now) {
            s.refuse(r);
        }
        s.late_probes = Some((got + 1, since));
        if u64::from(got + 1) >= LATE_PROBES {
            self.start_late(i, now, live);
        }
    }

    /// Start a late joiner on the run's start instant, in its own clock.
    pub(super) fn start_late(&mut self, i: usize, now: Now, live: &Live) {
        let s = &mut self.slots[i];
        s.late_probes = None;
        s.state = super::State::Running;
        s.last_heard = now.at;
        let offset = s.offset();
        tracing::info!(worker = %s.hello.name, at = super::since(now, live.start), offset_ms = offset as f64 / 1e6, "late joiner started");
        self.send(
            i,
            ToWorker::Start {
                start_unix_nanos: live.start_nanos.saturating_add(offset),
            },
        );
    }
}
