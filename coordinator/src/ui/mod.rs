//! The live dashboard: one page served by the coordinator (`--ui-listen`), fed over
//! Server-Sent Events with what the coordinator already knows every interval (the
//! merged interval as report.json will hold it, the planned rate, the fleet, the
//! database's counters), with the controls `ctl` has, behind the same token.
//!
//! The [`Hub`] is where the run publishes and viewers subscribe. The merge never waits
//! for a browser: publishing is a push onto a bounded broadcast channel, and a viewer
//! that falls behind it is dropped, not buffered. A viewer that comes late gets the
//! history so far first (bounded too), then the live events.

mod server;

pub use server::UiServer;

use crate::service::Event;
use fleetload_common::wire::{Command, CommandReply};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Events a slow viewer may fall behind by before it is dropped.
const LAG: usize = 256;
/// Events kept for viewers that come late: an hour of 1 s intervals with counters,
/// and at most [`HISTORY_BYTES`] of them.
const HISTORY: usize = 10_000;
const HISTORY_BYTES: usize = 64 << 20;

/// One event of the stream, serialized once for every viewer.
#[derive(Debug)]
pub struct Item {
    pub seq: u64,
    pub event: &'static str,
    pub data: String,
}

#[derive(Debug, Default)]
struct State {
    seq: u64,
    history: Vec<Arc<Item>>,
    history_bytes: usize,
    /// Events left out of the history once it was full (the page says so).
    dropped_history: u64,
    report_html: Option<Arc<str>>,
}

/// Where the run publishes and the dashboard's viewers subscribe.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<Item>>,
    /// The run's command path (the same `ctl` takes); weak, so a finished run's
    /// channel closes.
    commands: Mutex<Option<mpsc::WeakSender<Event>>>,
    /// The fleet's token: the controls need it; with `private`, viewing too.
    token: Option<Arc<str>>,
    private: bool,
}

/// Why a control request was not carried out.
#[derive(Debug, PartialEq, Eq)]
pub enum ControlError {
    /// No run to send it to (not started, or over).
    NoRun,
    /// The run did not answer.
    NoAnswer,
}

impl Hub {
    /// A hub whose controls need `token` (none: anyone who reaches the page, as `ctl`);
    /// `private`: viewing needs it too.
    pub fn new(token: Option<Arc<str>>, private: bool) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(LAG);
        Arc::new(Hub {
            state: Mutex::new(State::default()),
            tx,
            commands: Mutex::new(None),
            token,
            private,
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    /// Publish `data` as event `event` to every viewer and to the history.
    pub fn publish<T: Serialize>(&self, event: &'static str, data: &T) {
        if let Ok(data) = serde_json::to_string(data) {
            self.publish_json(event, data);
        }
    }

    /// Publish `data`, already JSON.
    pub fn publish_json(&self, event: &'static str, data: String) {
        self.with(|s| {
            s.seq += 1;
            let item = Arc::new(Item {
                seq: s.seq,
                event,
                data,
            });
            if s.history.len() < HISTORY && s.history_bytes + item.data.len() <= HISTORY_BYTES {
                s.history_bytes += item.data.len();
                s.history.push(Arc::clone(&item));
            } else {
                s.dropped_history += 1;
            }
            // No viewer is not an error; a full channel overwrites the oldest.
            let _ = self.tx.send(item);
        });
    }

    /// The history so far and the live events after it, subscribed in one step so
    /// nothing falls between them.
    pub fn subscribe(&self) -> (Vec<Arc<Item>>, broadcast::Receiver<Arc<Item>>, u64) {
        self.with(|s| (s.history.clone(), self.tx.subscribe(), s.dropped_history))
    }

    /// Viewers connected now.
    pub fn viewers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Route control requests to the run behind `events`.
    pub(crate) fn attach(&self, events: &mpsc::Sender<Event>) {
        if let Ok(mut c) = self.commands.lock() {
            *c = Some(events.downgrade());
        }
    }

    /// Carry out `command` through the run's command path.
    ///
    /// # Errors
    /// No run is attached any more, or it did not answer.
    pub async fn command(&self, command: Command) -> Result<CommandReply, ControlError> {
        let events = self
            .commands
            .lock()
            .ok()
            .and_then(|c| c.as_ref().and_then(mpsc::WeakSender::upgrade))
            .ok_or(ControlError::NoRun)?;
        let (reply, answer) = oneshot::channel();
        events
            .send(Event::Command { command, reply })
            .await
            .map_err(|_| ControlError::NoRun)?;
        answer.await.map_err(|_| ControlError::NoAnswer)
    }

    /// Whether `given` is the fleet's token (always, when there is none).
    pub fn authorized(&self, given: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        match &self.token {
            None => true,
            Some(t) => given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(t.as_bytes()))),
        }
    }

    /// Whether viewing needs the token.
    pub fn private(&self) -> bool {
        self.private && self.token.is_some()
    }

    /// Whether the controls need a token.
    pub fn needs_token(&self) -> bool {
        self.token.is_some()
    }

    /// The run is over: say so to every viewer and serve its report.html.
    pub fn finished(&self, report: &fleetload_report::Report) {
        let html: Arc<str> = Arc::from(fleetload_report::html::render(report));
        self.with(|s| s.report_html = Some(html));
        // The fleet as it ended (workers done, lost, recovered).
        self.publish(
            "fleet",
            &serde_json::json!({
                "workers": report.workers.iter().map(|w| serde_json::json!({
                    "index": w.index,
                    "name": w.name,
                    "host": w.host,
                    "state": w.state,
                    "rate": w.rate,
                })).collect::<Vec<_>>(),
                "membership": report.membership,
                "changes": report.changes,
            }),
        );
        #[derive(Serialize)]
        struct End<'a> {
            status: fleetload_report::RunStatus,
            failures: &'a [String],
            report: &'static str,
            merged_equals_executed: Option<bool>,
        }
        self.publish(
            "end",
            &End {
                status: report.status,
                failures: &report.failures,
                report: "/report.html",
                merged_equals_executed: report.verification.merged_equals_executed,
            },
        );
    }

    /// The run failed before it had a report (workers missing, the target down).
    pub fn failed(&self, error: &str) {
        self.publish(
            "end",
            &serde_json::json!({
                "status": "failed",
                "failures": [error],
                "report": null,
                "merged_equals_executed": null,
            }),
        );
    }

    /// The final report.html, once the run is over.
    pub fn report_html(&self) -> Option<Arc<str>> {
        self.with(|s| s.report_html.clone())
    }
}

/// What the page is told when the run starts.
#[derive(Debug, Serialize)]
pub struct Start {
    pub run_id: String,
    pub target: String,
    pub scenario: String,
    pub load: String,
    pub duration_s: Option<f64>,
    pub interval_s: f64,
    pub warmup_s: f64,
    pub operations: Vec<String>,
    pub workers: usize,
    /// The stages: `[start_s, end_s, description]`.
    pub stages: Vec<(f64, f64, String)>,
    /// Whether the controls need the token.
    pub needs_token: bool,
    pub closed_loop: bool,
}

/// One closed interval, as the page draws it (the fleet comes in `fleet` events, when
/// it changes).
#[derive(Debug, Serialize)]
pub struct Frame<'a> {
    pub elapsed_s: f64,
    /// The cluster's planned rate over the interval (open loop).
    pub planned: Option<f64>,
    /// As report.json holds it, without the per-worker briefs (see `per_worker_ok`).
    pub interval: fleetload_report::IntervalJson,
    /// Each worker's successful operations per second, by slot.
    pub per_worker_ok: std::collections::BTreeMap<u32, f64>,
    /// The stage the interval is in.
    pub stage: Option<&'a str>,
    /// Every threshold's verdict so far: the run's on its measured intervals, the
    /// current stage's on its own (downtime thresholds are judged at the end).
    pub thresholds: Vec<ThresholdLine>,
    /// What each server instance served in the interval.
    pub instances: Vec<InstanceLine<'a>>,
    /// Session outages the workers reported so far (failovers, connection losses).
    pub session_outages: usize,
}

/// A threshold's verdict so far, as the page shows it: the measured value as text with
/// its unit (a percentage for error_rate), as report.txt writes it.
#[derive(Debug, Serialize)]
pub struct ThresholdLine {
    pub scope: String,
    pub threshold: String,
    pub measured: String,
    pub passed: bool,
}

impl From<&fleetload_report::thresholds::ThresholdResult> for ThresholdLine {
    fn from(t: &fleetload_report::thresholds::ThresholdResult) -> Self {
        ThresholdLine {
            scope: t.scope.clone(),
            threshold: t.threshold.clone(),
            measured: t.measured_text(),
            passed: t.passed,
        }
    }
}

/// One server instance in one interval.
#[derive(Debug, Serialize)]
pub struct InstanceLine<'a> {
    pub name: &'a str,
    pub read_only: bool,
    pub sessions: u64,
    pub ok: u64,
    pub errors: u64,
}

/// A worker as the page lists it.
#[derive(Debug, Serialize)]
pub struct WorkerLine<'a> {
    pub index: usize,
    pub name: &'a str,
    pub host: &'a str,
    pub state: &'static str,
    pub rate: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt as _;

    #[tokio::test]
    async fn a_viewer_that_does_not_read_is_dropped_and_memory_stays_bounded() {
        let hub = Hub::new(None, false);
        hub.publish("interval", &1);
        let (stream, _) = server::viewer(&hub);
        // It reads nothing while the run publishes far more than the channel holds.
        for i in 0..(LAG as u64 * 4) {
            hub.publish("interval", &i);
        }
        let got: Vec<_> = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.collect::<Vec<_>>(),
        )
        .await
        .expect("the stream of a viewer that fell behind ends instead of waiting");
        // The history it was owed, then nothing: it was dropped, not buffered for.
        assert_eq!(got.len(), 1, "{}", got.len());
        // A late viewer gets the history, bounded.
        for i in 0..(HISTORY as u64) {
            hub.publish("interval", &i);
        }
        let (history, _, dropped) = hub.subscribe();
        assert_eq!(history.len(), HISTORY);
        assert_eq!(dropped, LAG as u64 * 4 + 1);
    }

    #[tokio::test]
    async fn a_late_viewer_gets_the_history_then_the_live_events_once_each() {
        let hub = Hub::new(None, false);
        for i in 0..3 {
            hub.publish("interval", &i);
        }
        let (stream, _) = server::viewer(&hub);
        for i in 3..6 {
            hub.publish("interval", &i);
        }
        let mut stream = Box::pin(stream);
        let mut seqs = Vec::new();
        while let Ok(Some(item)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), stream.next()).await
        {
            seqs.push(item.seq);
        }
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn only_the_fleet_token_controls() {
        let open = Hub::new(None, false);
        assert!(open.authorized(None) && !open.private());
        let hub = Hub::new(Some(Arc::from("s3cret")), true);
        assert!(hub.authorized(Some("s3cret")) && hub.private());
        assert!(!hub.authorized(None) && !hub.authorized(Some("s3cre")));
    }
}
