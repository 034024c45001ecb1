//! Who may take part: newcomers before and after the start, rejoins of a running slot
//! (with its resume secret and certificate), and what each worker's messages do.

use super::{since, Arrival, Controller, Effect, Live, Now, State};
use crate::metrics::MetricsUpdate;
use fleetload_common::stats::OpTotals;
use fleetload_common::wire::{FromWorker, ToWorker};
use fleetload_report::admission::{Refusal, RefusalClass};
use fleetload_report::merge::Accepted;

impl Controller {
    /// Refuse a stream that said hello, telling it why, and log it with its peer address
    /// and the name it claimed.
    pub(super) fn refuse_join(&mut self, a: &Arrival, reason: String) {
        tracing::warn!(worker = %a.hello.name, peer = %crate::shown(&a.peer), %reason, "refused a worker");
        self.count_refusal(format!("as {}: {reason}", a.hello.name), a.peer);
        self.close(a.conn, ToWorker::Refused { reason });
    }

    /// Count a refusal by reason, keeping the first peer.
    pub(super) fn count_refusal(&mut self, reason: String, peer: Option<std::net::SocketAddr>) {
        let entry = self
            .refused
            .entry(reason)
            .or_insert_with(|| (0, crate::shown(&peer)));
        entry.0 += 1;
    }

    /// The refusals in one clause, for an error that says the fleet did not gather.
    pub(super) fn refusals(&self) -> String {
        if self.refused.is_empty() {
            return String::new();
        }
        let total: u64 = self.refused.values().map(|(n, _)| n).sum();
        let each: Vec<String> = self
            .refused
            .iter()
            .map(|(reason, (n, peer))| format!("{n} {reason} (first from {peer})"))
            .collect();
        format!("; {total} refused: {}", each.join("; "))
    }

    /// Refuse a worker that arrives when the run already has its fleet.
    pub(super) fn refuse_full(&mut self, a: &Arrival) {
        let reason = format!(
            "run {} already has its {} workers; {} is not needed",
            self.run_id, self.config.max_workers, a.hello.name
        );
        self.refuse_join(a, reason);
    }

    /// A worker beyond the starting fleet before the start: keep it for later if the
    /// run admits more, refuse it otherwise.
    pub(super) fn hold_or_refuse(&mut self, a: Arrival) {
        if a.hello.rejoin.is_some() {
            self.refuse_join(&a, "there is no running run to rejoin yet".into());
        } else if self.slots.len() + self.waiting.len() < self.config.max_workers {
            tracing::info!(worker = %a.hello.name, peer = %crate::shown(&a.peer), "worker will join once the run has started");
            self.waiting.push(a);
        } else {
            self.refuse_full(&a);
        }
    }

    /// A worker that lost its stream asks for its slot back. It must name this run and
    /// a running slot, present the slot's resume secret and, under mutual TLS, the
    /// certificate that took the slot: a holder of the fleet token alone cannot take a
    /// running worker's place. Every rejoin and refusal is logged with the peer address
    /// and the claimed name; a refused claim on a slot is counted on that slot.
    pub(super) fn rejoin(&mut self, a: Arrival, live: &mut Live, now: Now) {
        let Some(claim) = a.hello.rejoin.clone() else {
            return;
        };
        let run_id = self.run_id.clone();
        if claim.run_id != run_id {
            let reason = format!(
                "run {:?} is not running here (this is run {run_id})",
                claim.run_id
            );
            return self.refuse_join(&a, reason);
        }
        let index = claim.worker_index as usize;
        let Some(slot) = self.slots.get_mut(index) else {
            let reason = format!("run {run_id} has no worker slot {index}");
            return self.refuse_join(&a, reason);
        };
        // A worker lost to a partition may come back while the run goes on; one that
        // failed, finished, or was lost after the end has nothing to rejoin.
        let back_from_loss =
            slot.state == State::Lost && slot.lost.is_some() && self.config.plan.rejoin.is_some();
        if slot.state != State::Running && !back_from_loss {
            let reason = format!(
                "worker {} of run {run_id} is no longer part of it ({:?})",
                slot.hello.name, slot.state
            );
            return self.refuse_join(&a, reason);
        }
        use subtle::ConstantTimeEq;
        let secret_ok: bool = claim
            .secret
            .0
            .as_bytes()
            .ct_eq(slot.resume_secret.0.as_bytes())
            .into();
        let cert_ok = slot.cert.is_none() || slot.cert == a.cert;
        if !secret_ok || !cert_ok {
            let what = if secret_ok {
                "with another client certificate than the one that took it"
            } else {
                "without the slot's resume secret"
            };
            slot.refuse(Refusal::new(
                RefusalClass::Rejoin,
                format!(
                    "{} at {:?} claimed slot {index} ({}) {what}",
                    a.hello.name, a.peer, slot.hello.name
                ),
            ));
            let reason = format!("slot {index} of run {run_id} is held by its worker; a rejoin must present the slot's resume secret and the client certificate that took it");
            return self.refuse_join(&a, reason);
        }
        tracing::info!(worker = %slot.hello.name, claimed_by = %a.hello.name, peer = %crate::shown(&a.peer), was = %crate::shown(&slot.peer), "worker rejoined; it resends what was not acknowledged");
        slot.conn = a.conn;
        slot.peer = a.peer;
        slot.last_heard = now.at;
        if !claim.spool.is_empty() {
            slot.spool = Some(claim.spool.clone());
        }
        let held = self.acked_through(claim.worker_index, &live.merge);
        self.send(
            index,
            match held {
                Some(sequence) => ToWorker::Ack { sequence },
                None => ToWorker::Heartbeat,
            },
        );
        if back_from_loss {
            self.readmit(index, now, live);
        } else {
            // It may have paused its load for want of word from us: its share again.
            let s = &self.slots[index];
            let r = fleetload_common::wire::Rebalance {
                extra: s.extra.clone(),
                profile: s.profile.clone(),
            };
            self.send(index, ToWorker::Rebalance(r));
        }
    }

    /// The highest sequence of `worker` that the coordinator holds for good: merged
    /// and, when the run writes checkpoints, in the last one written. A worker keeps
    /// every snapshot above it, so a coordinator that dies loses nothing that
    /// `report recover` cannot find in the checkpoint or the spools.
    pub(super) fn acked_through(
        &self,
        worker: u32,
        merge: &fleetload_report::merge::Merge,
    ) -> Option<u64> {
        let held = merge.workers.get(&worker).and_then(|w| w.contiguous());
        match &self.checkpointed {
            None => held,
            Some(durable) => durable
                .get(&worker)
                .copied()
                .and_then(|d| held.map(|h| h.min(d))),
        }
    }

    /// A message from a worker of the running run.
    pub(super) fn on_message(&mut self, conn: u64, message: FromWorker, now: Now, live: &mut Live) {
        let Some(index) = self.slot_index(conn) else {
            return;
        };
        self.slots[index].last_heard = now.at;
        match message {
            FromWorker::Snapshot(snap) => self.on_snapshot(index, &snap, now, live),
            FromWorker::Done(done) => self.on_done(index, *done, live),
            FromWorker::Failure(m) => {
                let s = &mut self.slots[index];
                live.failures
                    .push(format!("worker {} failed: {m}", s.hello.name));
                s.state = State::Failed;
                s.message = Some(m);
                let at = since(now, live.start);
                live.failures.extend(self.after_loss(index, at));
            }
            FromWorker::Ready { spool, .. } if self.slots[index].state == State::Joined => {
                self.slots[index].spool = (!spool.is_empty()).then_some(spool);
                self.probe_late(index, now);
            }
            FromWorker::TimeEcho(echo) => self.late_echo(index, &echo, now, live),
            FromWorker::Hello(_) => self.slots[index].refuse(Refusal::new(
                RefusalClass::Malformed,
                "a second hello on the same stream",
            )),
            FromWorker::Ready { .. } | FromWorker::Heartbeat => {}
        }
    }

    fn on_snapshot(
        &mut self,
        index: usize,
        snap: &fleetload_common::wire::Snapshot,
        now: Now,
        live: &mut Live,
    ) {
        let elapsed = now.at.saturating_duration_since(live.start);
        let slot = &mut self.slots[index];
        if let Err(r) = self
            .bounds
            .snapshot(snap, index as u32, &self.run_id, elapsed)
        {
            return slot.refuse(r);
        }
        match live.merge.add(snap) {
            Ok(Accepted::New) => {
                if self.outputs.metrics {
                    let totals = snap
                        .operations
                        .iter()
                        .map(|(op, stats)| {
                            let mut t = OpTotals::default();
                            t.add(stats);
                            (op.clone(), t)
                        })
                        .collect();
                    self.effects
                        .push(Effect::Metrics(MetricsUpdate::Accepted(totals)));
                }
            }
            Ok(Accepted::Duplicate) => {
                tracing::debug!(worker = %slot.hello.name, seq = snap.sequence, "duplicate snapshot ignored");
            }
            Err(r) => slot.refuse(r),
        }
        // With checkpoints, acknowledgements follow each checkpoint written.
        if self.checkpointed.is_none() {
            if let Some(sequence) = self.acked_through(snap.worker_index, &live.merge) {
                self.send(index, ToWorker::Ack { sequence });
            }
        }
    }

    fn on_done(&mut self, index: usize, done: fleetload_common::wire::Done, live: &Live) {
        let base = self.config.plan.insert_id_base(index);
        let slot = &mut self.slots[index];
        if slot.state != State::Running {
            return slot.refuse(Refusal::new(
                RefusalClass::Unexpected,
                format!("a Done from a worker that is {:?}", slot.state),
            ));
        }
        let its_start = live.start_nanos.saturating_add(slot.offset());
        if let Err(r) = self
            .bounds
            .done(&done, index as u32, &self.run_id, base, its_start)
        {
            return slot.refuse(r);
        }
        tracing::info!(worker = %slot.hello.name, snapshots = done.snapshots_sent, "worker done");
        slot.state = State::Done;
        slot.done = Some(done);
    }
}
