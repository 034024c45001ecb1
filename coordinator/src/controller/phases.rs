//! The phases before the start: gathering the fleet, the target work and the
//! assignments, the workers opening their sessions; and what every one of them does
//! with a stream that ends, a newcomer, a command or an interrupt.

use super::*;
use fleetload_common::wire::FromWorker;

impl Controller {
    pub(super) fn gathering(&mut self, now: Now, input: Input) {
        let want = self.config.workers;
        match input {
            Input::Joined(a) if a.hello.rejoin.is_some() => self.hold_or_refuse(a),
            Input::Joined(a) => {
                tracing::info!(worker = %a.hello.name, host = %a.hello.host, peer = %crate::shown(&a.peer), "worker joined ({}/{want})", self.slots.len() + 1);
                self.slots.push(Slot::new(
                    a,
                    fleetload_common::split::Shard { first: 1, last: 1 },
                    now.at,
                ));
                if self.slots.len() >= want {
                    // Slots in the order of the workers' names (worker-2 before
                    // worker-10), not of their arrival: slot i is worker-i whenever the
                    // names say so, in the report and on the dashboard alike.
                    self.slots
                        .sort_by_cached_key(|s| natural_key(&s.hello.name));
                    self.phase = Phase::Preparing { assigned: false };
                    self.phase_deadline = None;
                    self.effects.push(Effect::Target(TargetStep::BeforeAssign));
                }
            }
            Input::Closed { conn, .. } => {
                if let Some(i) = self.slot_index(conn) {
                    let gone = self.slots.remove(i);
                    tracing::warn!(worker = %gone.hello.name, "worker left before the run started");
                }
            }
            Input::Command { id, .. } => {
                let message = format!("the run has not started yet: {} of {want} workers have joined; try again once it runs", self.slots.len());
                self.reply(id, CommandReply::refused(message));
            }
            Input::Tick if self.phase_deadline.is_some_and(|d| now.at >= d) => {
                let names: Vec<String> = self
                    .slots
                    .iter()
                    .map(|s| format!("{} ({})", s.hello.name, s.hello.host))
                    .collect();
                let refused = self.refusals();
                self.fail(CoordinatorError::WorkersMissing {
                    joined: self.slots.len(),
                    expected: want,
                    waited: self.config.join_timeout,
                    names: if names.is_empty() {
                        String::new()
                    } else {
                        format!(" (joined: {})", names.join(", "))
                    },
                    refused,
                    dial: self.outputs.dial.clone(),
                });
            }
            other => self.before_start(other, "before the run started"),
        }
    }

    pub(super) fn preparing(&mut self, now: Now, input: Input) {
        let plan = &self.config.plan;
        let (most_rows, most_sessions) = (plan.rows, plan.all_sessions());
        match input {
            Input::TargetDone(Ok(update))
                if self.phase == (Phase::Preparing { assigned: false }) =>
            {
                self.apply(update);
                if let Err(e) = self.assign() {
                    return self.fail(e);
                }
                self.phase = Phase::Preparing { assigned: true };
                self.phase_deadline = Some(now.at + self.ready_wait());
            }
            Input::Message {
                conn,
                message:
                    FromWorker::Ready {
                        sessions,
                        rows_loaded,
                        spool,
                    },
            } => {
                let Some(i) = self.slot_index(conn) else {
                    return;
                };
                let s = &mut self.slots[i];
                if rows_loaded > most_rows || sessions > most_sessions {
                    return s.refuse(Refusal::new(RefusalClass::ImpossibleCount, format!(
                        "ready with {sessions} sessions and {rows_loaded} rows loaded, of {most_sessions} sessions and {most_rows} rows"
                    )));
                }
                tracing::info!(worker = %s.hello.name, sessions, rows_loaded, "worker ready");
                s.state = State::Ready;
                s.rows_loaded = rows_loaded;
                s.spool = (!spool.is_empty()).then_some(spool);
                if self.slots.iter().all(|s| s.state == State::Ready) {
                    self.phase = Phase::Ready;
                    self.phase_deadline = None;
                    self.effects.push(Effect::Target(TargetStep::AfterReady));
                }
            }
            Input::Message {
                conn,
                message: FromWorker::Failure(message),
            } => {
                let worker = self.name_of(conn);
                self.fail(CoordinatorError::WorkerFailed { worker, message });
            }
            Input::Invalid { conn, error } => {
                let worker = self.name_of(conn);
                self.fail(CoordinatorError::WorkerFailed {
                    worker,
                    message: format!("protocol error: {error}"),
                });
            }
            Input::Tick if self.phase_deadline.is_some_and(|d| now.at >= d) => {
                let late = self
                    .slots
                    .iter()
                    .find(|s| s.state != State::Ready)
                    .map(|s| s.hello.name.clone())
                    .unwrap_or_default();
                self.fail(CoordinatorError::ReadyTimeout {
                    worker: late,
                    waited: self.ready_wait(),
                    sessions: most_sessions,
                });
            }
            other => self.before_start(other, "while opening its sessions"),
        }
    }

    /// How long the workers may take to open their sessions (and load their shards).
    fn ready_wait(&self) -> Duration {
        let plan = &self.config.plan;
        // Loading a shard takes time too: allow a generous 1 000 rows per second (a
        // TPC-C warehouse, the key, is about 500 000 rows).
        let loading = if self.config.prepare.is_some() {
            let per_key = match plan.scenario.builtin() {
                Some(fleetload_common::scenario::Scenario::Tpcc) => 500_000,
                _ => 1,
            };
            Duration::from_secs(plan.rows.saturating_mul(per_key) / 1000)
        } else {
            Duration::ZERO
        };
        loading
            + plan.connect_timeout
            + Duration::from_secs_f64(f64::from(plan.all_sessions()) / f64::from(plan.connect_rate))
            + Duration::from_secs(10)
    }

    pub(super) fn ready(&mut self, now: Now, input: Input) {
        match input {
            Input::TargetDone(Ok(update)) => {
                self.apply(update);
                if self.config.prepare.is_some() {
                    let loaded: Vec<String> = self
                        .slots
                        .iter()
                        .map(|s| format!("{} {}", s.hello.name, s.rows_loaded))
                        .collect();
                    tracing::info!(loaded = %loaded.join(", "), "data prepared by the fleet");
                }
                self.probe_round(now, 0);
            }
            other => self.before_start(other, "before the start"),
        }
    }

    /// Take what the target work learned into the plan.
    fn apply(&mut self, update: PlanUpdate) {
        if let Some(rows) = update.rows {
            self.config.plan.rows = rows;
        }
        if let Some(standin) = update.standin {
            self.config.plan.standin = standin;
        }
    }

    /// Events that mean the same in every phase before the start: a worker whose stream
    /// ends takes the run down, a newcomer waits for the start, `ctl` is told to wait,
    /// failed target work or an interrupt ends the run, other messages are not due yet.
    pub(super) fn before_start(&mut self, input: Input, phase: &'static str) {
        match input {
            Input::Closed { conn, error } => {
                if let Some(i) = self.slot_index(conn) {
                    let worker = self.slots[i].hello.name.clone();
                    self.fail(match error {
                        Some(e) => CoordinatorError::WorkerFailed {
                            worker,
                            message: format!("stream broke {phase}: {e}"),
                        },
                        None => CoordinatorError::WorkerLost { worker, phase },
                    });
                }
            }
            Input::Joined(a) => self.hold_or_refuse(a),
            Input::Command { id, .. } => self.reply(
                id,
                CommandReply::refused("the run has not started yet; try again in a moment"),
            ),
            Input::TargetDone(Err(e)) => self.fail(e),
            Input::Interrupted => self.fail(CoordinatorError::Cancelled),
            Input::ServiceStopped => self.fail(CoordinatorError::ServiceStopped),
            // Counted in `handle`, before any phase sees it.
            Input::Unauthorized { .. } => {}
            Input::Message { .. }
            | Input::Invalid { .. }
            | Input::Tick
            | Input::TargetDone(_)
            | Input::Checkpointed(_) => {}
        }
    }
}

/// A name's key for natural order: runs of digits compare as numbers.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = u64::from(c as u8 - b'0');
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n = n
                    .saturating_mul(10)
                    .saturating_add(u64::from(*d as u8 - b'0'));
                chars.next();
            }
            out.push((std::mem::take(&mut text), n));
        } else {
            text.push(c);
        }
    }
    out.push((text, 0));
    out
}

#[cfg(test)]
mod natural_order {
    #[test]
    fn numbers_in_names_order_as_numbers() {
        let mut names = vec!["worker-10", "worker-2", "worker-0", "w1", "worker-1"];
        names.sort_by_cached_key(|n| super::natural_key(n));
        assert_eq!(
            names,
            ["w1", "worker-0", "worker-1", "worker-2", "worker-10"]
        );
    }
}
