//! Who runs what: each worker's keys and share of the load at the start, for a late
//! joiner from the next interval, and for the survivors when a worker is lost.

use super::{since, Arrival, Controller, Live, Now, State};
use crate::error::CoordinatorError;
use fleetload_common::plan::{LoadModel, OnWorkerLoss, Plan};
use fleetload_common::profile::Profile;
use fleetload_common::split::{split_keys, split_rate, Shard};
use fleetload_common::wire::{Assignment, Rebalance, ResumeSecret, ToWorker, WorkerLoad};

/// The next interval boundary after `elapsed_s`, seconds from the start.
pub(super) fn next_boundary(plan: &Plan, elapsed_s: f64) -> f64 {
    let interval = plan.interval.as_secs_f64();
    ((elapsed_s / interval).floor() + 1.0) * interval
}

impl Controller {
    /// Insert ids step by the largest fleet the run may have, so every worker, late
    /// joiners included, inserts ids of its own residue; `verify` checks them by it.
    pub(super) fn insert_id_stride(&self) -> u64 {
        self.config.max_workers.max(self.config.workers) as u64
    }

    /// A worker's load from `profile` (its share of the cluster's, `None`: every
    /// session in closed loop) and its arrival phase.
    fn worker_load(&self, profile: Option<Profile>, phase: f64) -> WorkerLoad {
        match self.config.plan.load {
            LoadModel::Open {
                arrival,
                max_backlog,
                ..
            } => WorkerLoad::Open {
                profile: profile.unwrap_or_else(|| Profile::constant(0.0)),
                arrival,
                phase,
                max_backlog,
                catch_up: self.config.plan.catch_up,
            },
            LoadModel::Closed { think_time } => WorkerLoad::Closed {
                think_time,
                sessions: profile,
                tpcc_wait: self.config.plan.tpcc_wait,
            },
        }
    }

    /// Give slot `i` its keys and load, and send it its assignment with a fresh
    /// resume secret.
    fn send_assignment(
        &mut self,
        i: usize,
        shard: Shard,
        load: WorkerLoad,
        load_rows: bool,
    ) -> Result<(), CoordinatorError> {
        let plan = &self.config.plan;
        let a = Assignment {
            run_id: self.run_id.clone(),
            worker_index: i as u32,
            target: plan.target.clone(),
            scenario: plan.scenario.clone(),
            mix: plan.mix.clone(),
            shard,
            rows: plan.rows,
            insert_id_base: plan.insert_id_base(i),
            insert_id_stride: self.insert_id_stride(),
            batch_size: plan.batch,
            aurora_ml: matches!(plan.ml, fleetload_common::plan::MlMode::Aurora { .. }),
            load_rows,
            sessions: plan.sessions,
            load,
            duration: plan.duration,
            interval: plan.interval,
            seed: plan.seed,
            connect_rate: plan.connect_rate,
            op_timeout: plan.op_timeout,
            connect_timeout: plan.connect_timeout,
            lease: plan.lease,
            max_connection_age: plan.max_connection_age,
            reader: plan.reader.clone(),
            resume_secret: new_resume_secret()?,
            plan_hash: plan.hash(),
            rejoin_after_end: plan.rejoin,
        };
        let s = &mut self.slots[i];
        s.shard = shard;
        s.resume_secret = a.resume_secret.clone();
        (s.profile, s.rate) = match &a.load {
            WorkerLoad::Open { profile, .. } => {
                (Some(profile.clone()), Some(profile.value_at(0.0)))
            }
            WorkerLoad::Closed { sessions, .. } => (sessions.clone(), None),
        };
        tracing::info!(worker = %s.hello.name, %shard, rate = %s.rate.map_or_else(|| "closed loop".to_string(), |r| format!("{r:.1}/s")), "assigned");
        self.send(i, ToWorker::Assignment(Box::new(a)));
        Ok(())
    }

    /// Split the keys and the load over the starting fleet by capacity.
    pub(super) fn assign(&mut self) -> Result<(), CoordinatorError> {
        let plan = &self.config.plan;
        let weights: Vec<f64> = self.slots.iter().map(|s| s.hello.capacity).collect();
        let shards = split_keys(plan.rows, &weights)?;
        let n = self.slots.len() as u64;
        let shares = split_rate(&weights)?;
        if let (LoadModel::Closed { .. }, Some(c)) = (&plan.load, &self.cluster) {
            let most = c.max();
            if most > f64::from(plan.all_sessions()) * n as f64 {
                return Err(CoordinatorError::TooFewSessions {
                    most,
                    workers: n,
                    sessions: plan.all_sessions(),
                    open: u64::from(plan.all_sessions()) * n,
                });
            }
        }
        for (i, (shard, share)) in shards.into_iter().zip(&shares).enumerate() {
            self.slots[i].share = share.share;
            let profile = self.cluster.as_ref().map(|c| c.scaled(share.share));
            let load = self.worker_load(profile, share.phase);
            self.send_assignment(i, shard, load, self.config.prepare.is_some())?;
        }
        Ok(())
    }

    /// Admit a worker into the running run: it runs a share of the load from the next
    /// interval on, reading and updating keys from the whole key space (shards are
    /// fixed at the start), and inserting ids of its own residue.
    pub(super) fn admit(&mut self, a: Arrival, now: Now, live: &Live) {
        if self.slots.len() >= self.config.max_workers
            || self.stop_request.is_some()
            || live.stopped_at.is_some()
        {
            return self.refuse_full(&a);
        }
        let plan = self.config.plan.clone();
        let i = self.slots.len();
        let elapsed = since(now, live.start);
        let at = next_boundary(&plan, elapsed);
        if at >= plan.duration.as_secs_f64() {
            let reason = format!(
                "run {} ends before the next interval; nothing left to share",
                self.run_id
            );
            return self.refuse_join(&a, reason);
        }
        tracing::info!(worker = %a.hello.name, peer = %crate::shown(&a.peer), at, "a worker joins the running run");
        let everything = Shard {
            first: 1,
            last: plan.rows,
        };
        self.slots.push(super::Slot::new(a, everything, now.at));
        // New shares over the running workers and the newcomer, from `at`.
        let members: Vec<usize> = (0..self.slots.len())
            .filter(|k| *k == i || self.slots[*k].state == State::Running)
            .collect();
        let weights: Vec<f64> = members
            .iter()
            .map(|k| self.slots[*k].hello.capacity)
            .collect();
        let Ok(shares) = split_rate(&weights) else {
            return;
        };
        for (k, sh) in members.iter().zip(&shares) {
            self.slots[*k].share = sh.share;
        }
        let phase = members
            .iter()
            .position(|k| *k == i)
            .map_or(0.0, |p| shares[p].phase);
        let zero = Profile::constant(0.0);
        let mine = self
            .cluster
            .as_ref()
            .map(|c| zero.splice(at, &c.scaled(self.slots[i].share)));
        let load = self.worker_load(mine, phase);
        if let Err(e) = self.send_assignment(i, everything, load, false) {
            tracing::error!(error = %e, "cannot admit a worker");
            let conn = self.slots[i].conn;
            self.close(
                conn,
                ToWorker::Stop {
                    reason: e.to_string(),
                },
            );
            self.slots[i].state = State::Failed;
            return;
        }
        let name = self.slots[i].hello.name.clone();
        let parts = self.push_load(at);
        self.membership.push(fleetload_report::Membership {
            t_s: elapsed,
            event: format!(
                "worker {name} joined; from {at:.1}s the load is split over {} workers: {}",
                members.len(),
                parts.join("; ")
            ),
        });
    }

    /// A worker lost to a partition is back while the run goes on: it takes its keys
    /// and a share of the load again from the next interval (the survivors hand back
    /// what they took of its shard), and its loss is no longer a failure of the run.
    pub(super) fn readmit(&mut self, i: usize, now: Now, live: &mut Live) {
        let Some((lost_at, failure)) = self.slots[i].lost.take() else {
            return;
        };
        live.failures.retain(|f| *f != failure);
        let elapsed = since(now, live.start);
        self.slots[i].away.push((lost_at, elapsed));
        let plan = self.config.plan.clone();
        let name = self.slots[i].hello.name.clone();
        let s = &mut self.slots[i];
        s.state = State::Running;
        s.message = None;
        if live.stopped_at.is_some() {
            self.note(
                elapsed,
                format!("worker {name} rejoined (lost at {lost_at:.1}s); the run was ending"),
            );
            return self.send(
                i,
                ToWorker::Stop {
                    reason: "the run is ending".into(),
                },
            );
        }
        let at = next_boundary(&plan, elapsed).min(plan.duration.as_secs_f64());
        let shard = self.slots[i].shard;
        for (k, other) in self.slots.iter_mut().enumerate() {
            if k != i {
                other
                    .extra
                    .retain(|r| r.first < shard.first || r.last > shard.last);
            }
        }
        // Nothing is owed for the time it was away: its load starts again at `at`.
        self.slots[i].profile = self.slots[i]
            .profile
            .as_ref()
            .map(|_| Profile::constant(0.0));
        if plan.on_worker_loss == OnWorkerLoss::Rebalance {
            let members: Vec<usize> = (0..self.slots.len())
                .filter(|k| self.slots[*k].state == State::Running)
                .collect();
            let weights: Vec<f64> = members
                .iter()
                .map(|k| self.slots[*k].hello.capacity)
                .collect();
            if let Ok(shares) = split_rate(&weights) {
                for (k, sh) in members.iter().zip(shares) {
                    self.slots[*k].share = sh.share;
                }
            }
        }
        let parts = self.push_load(at);
        self.note(
            elapsed,
            format!(
                "worker {name} rejoined (lost at {lost_at:.1}s, away {:.1}s); from {at:.1}s: {}",
                elapsed - lost_at,
                parts.join("; ")
            ),
        );
    }

    /// Apply the plan's policy after worker `lost` left the run at `at_s`; returns a
    /// failure to record when the policy ends the run.
    pub(super) fn after_loss(&mut self, lost: usize, at_s: f64) -> Option<String> {
        let name = self.slots[lost].hello.name.clone();
        let event = format!("worker {name} left the run");
        tracing::warn!("{event}");
        self.note(at_s, event);
        match self.config.plan.on_worker_loss {
            OnWorkerLoss::Continue => None,
            OnWorkerLoss::Abort => {
                let reason = format!(
                    "run aborted at {at_s:.1}s: worker {name} was lost (on_worker_loss = abort)"
                );
                self.send_running(&ToWorker::Stop {
                    reason: reason.clone(),
                });
                self.note(at_s, reason.clone());
                Some(reason)
            }
            OnWorkerLoss::Rebalance => {
                self.rebalance_after(lost, at_s);
                None
            }
        }
    }

    fn note(&mut self, t_s: f64, event: String) {
        self.membership
            .push(fleetload_report::Membership { t_s, event });
    }

    /// The survivors take the lost worker's keys and load, in proportion to capacity.
    fn rebalance_after(&mut self, lost: usize, at_s: f64) {
        let survivors: Vec<usize> = (0..self.slots.len())
            .filter(|i| *i != lost && self.slots[*i].state == State::Running)
            .collect();
        if survivors.is_empty() {
            return self.note(at_s, "no worker left to take over".into());
        }
        let mut ranges = vec![self.slots[lost].shard];
        ranges.append(&mut self.slots[lost].extra);
        let weights: Vec<f64> = survivors
            .iter()
            .map(|i| self.slots[*i].hello.capacity)
            .collect();
        for r in ranges {
            match split_keys(r.len(), &weights) {
                Ok(parts) => {
                    for (i, p) in survivors.iter().zip(parts) {
                        self.slots[*i].extra.push(Shard {
                            first: r.first + p.first - 1,
                            last: r.first + p.last - 1,
                        });
                    }
                }
                // Fewer keys than survivors: the first takes them all.
                Err(_) => self.slots[survivors[0]].extra.push(r),
            }
        }
        self.slots[lost].share = 0.0;
        if let Ok(shares) = split_rate(&weights) {
            for (i, share) in survivors.iter().zip(shares) {
                self.slots[*i].share = share.share;
            }
        }
        let parts = self.push_load(at_s);
        self.note(at_s, format!("rebalanced: {}", parts.join("; ")));
    }

    /// Send every running worker its share of the cluster's load as it now stands, with
    /// the key ranges it took over; returns a line per worker for the report.
    pub(super) fn push_load(&mut self, at_s: f64) -> Vec<String> {
        let mut parts = Vec::new();
        for i in 0..self.slots.len() {
            if self.slots[i].state != State::Running {
                continue;
            }
            let s = &mut self.slots[i];
            // What it was sent still holds until `at`; its new share from then on.
            let profile = self.cluster.as_ref().map(|c| {
                let new = c.scaled(s.share);
                match &s.profile {
                    Some(old) => old.splice(at_s, &new),
                    None => new,
                }
            });
            s.profile = profile.clone();
            if let (Some(p), Some(_)) = (&profile, s.rate) {
                s.rate = Some(p.value_at(at_s));
            }
            let ranges: Vec<String> = s
                .extra
                .iter()
                .map(|x| format!("[{}, {}]", x.first, x.last))
                .collect();
            let load = match (&profile, s.rate) {
                (Some(p), Some(_)) => format!("rate {:.1}/s", p.value_at(at_s)),
                (Some(p), None) => format!("{:.0} sessions", p.value_at(at_s)),
                (None, _) => "every session".to_string(),
            };
            parts.push(if ranges.is_empty() {
                format!("{} {load}", s.hello.name)
            } else {
                format!("{} {load} takes {}", s.hello.name, ranges.join(" "))
            });
            let extra = s.extra.clone();
            self.send(i, ToWorker::Rebalance(Rebalance { extra, profile }));
        }
        parts
    }
}

/// A slot's resume secret: 128 bits from the operating system's generator.
fn new_resume_secret() -> Result<ResumeSecret, CoordinatorError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(CoordinatorError::Randomness)?;
    Ok(ResumeSecret(
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
    ))
}
