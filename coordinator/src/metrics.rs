//! The coordinator's Prometheus endpoint: counters of everything the merge accepted
//! and gauges of the last closed interval, in the text exposition format.
//!
//! Counters grow with every accepted snapshot (warm-up included, duplicates never), so
//! their final values equal the workers' own counts of what they executed, as the
//! report's merge check does. Latency stays the HdrHistogram's: the gauges are the
//! last interval's cluster percentiles from the merged histograms, not a Prometheus
//! histogram's bucket estimate.

use fleetload_common::histogram::Latency;
use fleetload_common::outcome::ErrorClass;
use fleetload_common::scenario::OpName;
use fleetload_common::stats::{OpStats, OpTotals};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the controller counts into the endpoint, as an effect the shell performs: the
/// controller never holds the registry.
#[derive(Debug, Clone)]
pub enum MetricsUpdate {
    /// The run being served.
    Run(RunFacts),
    /// A snapshot the merge accepted as new: its totals per operation.
    Accepted(Vec<(OpName, OpTotals)>),
    /// An interval closed.
    IntervalClosed(ClosedInterval),
}

/// The run as the endpoint labels it.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub run_id: String,
    pub scenario: String,
    /// The target's URL (redacted when counted in).
    pub target: String,
    pub workers: usize,
    pub duration: Duration,
    pub target_rate: Option<f64>,
    /// Each operation's role, labelled on its series (`role="read"`).
    pub roles: Vec<(OpName, fleetload_common::scenario::Role)>,
}

/// One closed interval, reduced to what the gauges show.
#[derive(Debug, Clone)]
pub struct ClosedInterval {
    operations: Vec<(OpName, Last)>,
    workers: usize,
    elapsed: Duration,
    target_rate: Option<f64>,
}

impl ClosedInterval {
    /// The interval's cluster stats per operation, its length, the workers still
    /// running, the time since the start and the planned cluster rate over it.
    pub fn of(
        ops: &[(OpName, &OpStats)],
        length_s: f64,
        workers: usize,
        elapsed: Duration,
        target_rate: Option<f64>,
    ) -> Self {
        let secs = |us: u64| us as f64 / 1e6;
        let q = |h: &Latency| {
            [
                secs(h.value_at_quantile(0.5)),
                secs(h.value_at_quantile(0.9)),
                secs(h.value_at_quantile(0.99)),
                secs(h.max()),
            ]
        };
        ClosedInterval {
            operations: ops
                .iter()
                .map(|(op, stats)| {
                    let last = Last {
                        ok_per_s: stats.ok as f64 / length_s.max(1e-9),
                        response: q(&stats.response),
                        lag_p99: (!stats.lag.is_empty())
                            .then(|| secs(stats.lag.value_at_quantile(0.99))),
                    };
                    (op.clone(), last)
                })
                .collect(),
            workers,
            elapsed,
            target_rate,
        }
    }
}

/// The last closed interval of one operation.
#[derive(Debug, Clone, Default)]
struct Last {
    ok_per_s: f64,
    /// p50, p90, p99, max, seconds.
    response: [f64; 4],
    lag_p99: Option<f64>,
}

#[derive(Debug, Default)]
struct State {
    run_id: String,
    scenario: String,
    target: String,
    totals: BTreeMap<OpName, OpTotals>,
    last: BTreeMap<OpName, Last>,
    target_rate: Option<f64>,
    workers_connected: usize,
    workers_planned: usize,
    elapsed_s: f64,
    duration_s: f64,
    intervals_closed: u64,
    /// Each operation's role (read or write), a label of its series.
    roles: BTreeMap<OpName, fleetload_common::scenario::Role>,
}

/// What the endpoint serves; the controller updates it as snapshots arrive and
/// intervals close.
#[derive(Debug, Default)]
pub struct Metrics {
    state: Mutex<State>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut s)
    }

    /// Count `update` in.
    pub fn apply(&self, update: MetricsUpdate) {
        match update {
            MetricsUpdate::Run(run) => self.with(|s| {
                s.roles = run.roles.into_iter().collect();
                s.run_id = run.run_id;
                s.scenario = run.scenario;
                s.target = fleetload_common::target::redact(&run.target);
                s.workers_planned = run.workers;
                s.duration_s = run.duration.as_secs_f64();
                s.target_rate = run.target_rate;
            }),
            MetricsUpdate::Accepted(ops) => self.with(|s| {
                for (op, totals) in ops {
                    s.totals.entry(op).or_default().merge(&totals);
                }
            }),
            MetricsUpdate::IntervalClosed(closed) => self.with(|s| {
                s.last.extend(closed.operations);
                s.workers_connected = closed.workers;
                s.elapsed_s = closed.elapsed.as_secs_f64();
                if closed.target_rate.is_some() {
                    s.target_rate = closed.target_rate;
                }
                s.intervals_closed += 1;
            }),
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        self.with(|s| {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "# HELP fleetload_run_info The run being served (1).\n# TYPE fleetload_run_info gauge\nfleetload_run_info{{run_id=\"{}\",scenario=\"{}\",target=\"{}\"}} 1",
                label(&s.run_id),
                label(&s.scenario),
                label(&s.target)
            );
            let simple = |out: &mut String, name: &str, kind: &str, help: &str, v: f64| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
            };
            simple(&mut out, "fleetload_workers_connected", "gauge", "Workers running or done at the last closed interval.", s.workers_connected as f64);
            simple(&mut out, "fleetload_workers_planned", "gauge", "Workers the run waits for.", s.workers_planned as f64);
            simple(&mut out, "fleetload_run_elapsed_seconds", "gauge", "Run time covered by closed intervals.", s.elapsed_s);
            simple(&mut out, "fleetload_run_duration_seconds", "gauge", "Planned run duration.", s.duration_s);
            simple(&mut out, "fleetload_intervals_closed_total", "counter", "Intervals closed so far.", s.intervals_closed as f64);
            if let Some(rate) = s.target_rate {
                simple(&mut out, "fleetload_target_rate", "gauge", "Planned cluster rate, operations per second (open loop).", rate);
            }
            let ops = |out: &mut String, name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (labels, v) in rows {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            };
            let roles = &s.roles;
            let op_label = |op: &OpName| {
                let role = roles.get(op).map_or("write", |r| r.name());
                format!("operation=\"{}\",role=\"{role}\"", label(op.as_str()))
            };
            ops(&mut out, "fleetload_operations_total", "counter", "Successful operations (warm-up included).",
                s.totals.iter().map(|(op, t)| (op_label(op), t.ok as f64)).collect());
            ops(&mut out, "fleetload_errors_total", "counter", "Failed operations by error class.",
                s.totals.iter().flat_map(|(op, t)| ErrorClass::ALL.iter().map(move |c| (format!("{},class=\"{}\"", op_label(op), c.name()), t.errors[c.index()] as f64))).collect());
            ops(&mut out, "fleetload_dropped_backlog_total", "counter", "Operations never started: the worker was more than max_backlog behind schedule.",
                s.totals.iter().map(|(op, t)| (op_label(op), t.dropped_backlog as f64)).collect());
            ops(&mut out, "fleetload_retries_total", "counter", "Deadlocks and serialization failures retried inside operations.",
                s.totals.iter().map(|(op, t)| (op_label(op), t.retries as f64)).collect());
            ops(&mut out, "fleetload_achieved_rate", "gauge", "Successful operations per second in the last closed interval.",
                s.last.iter().map(|(op, l)| (op_label(op), l.ok_per_s)).collect());
            ops(&mut out, "fleetload_response_time_seconds", "gauge", "Last closed interval's cluster response time (completion - intended start) from the merged HdrHistogram; percentile 100 is the maximum.",
                s.last.iter().flat_map(|(op, l)| ["50", "90", "99", "100"].iter().zip(l.response).map(move |(q, v)| (format!("{},percentile=\"{q}\"", op_label(op)), v))).collect());
            ops(&mut out, "fleetload_schedule_lag_seconds", "gauge", "Last closed interval's p99 schedule lag (send - intended start), open loop.",
                s.last.iter().filter_map(|(op, l)| l.lag_p99.map(|v| (format!("{},percentile=\"99\"", op_label(op)), v))).collect());
            out
        })
    }
}

/// Escape a label value: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serve `GET /metrics` on `listener` until `stop`. Every connection is answered once
/// and closed; a request larger than 8 KiB or slower than 5 s is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, stop: CancellationToken) {
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => break,
        };
        let Ok((mut conn, _)) = accepted else {
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tasks.spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                    let n = conn.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let request = String::from_utf8_lossy(&buf);
            let line = request.lines().next().unwrap_or_default();
            let mut parts = line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            let (status, kind, body) = match (method, path.split('?').next().unwrap_or_default()) {
                ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
                ("GET", "/") => ("200 OK", "text/html; charset=utf-8", "<a href=\"/metrics\">/metrics</a>\n".to_string()),
                ("GET", _) => ("404 Not Found", "text/plain", "only /metrics is served\n".to_string()),
                _ => ("405 Method Not Allowed", "text/plain", "GET /metrics\n".to_string()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetload_common::histogram::record;

    #[test]
    fn counters_add_every_accepted_snapshot_and_gauges_follow_the_last_interval() {
        let m = Metrics::default();
        let op = OpName::new("point_select").unwrap();
        m.apply(MetricsUpdate::Run(RunFacts {
            run_id: "run-1".into(),
            scenario: "point_select".into(),
            target: "mysql://u:secret@h:3306/db".into(),
            workers: 2,
            duration: Duration::from_secs(10),
            target_rate: Some(100.0),
            roles: vec![(op.clone(), fleetload_common::scenario::Role::Write)],
        }));
        let mut s = OpStats {
            ok: 3,
            ..OpStats::default()
        };
        for us in [1000, 2000, 3000] {
            record(&mut s.response, Duration::from_micros(us));
        }
        s.add_error(ErrorClass::Timeout, || "slow".into());
        s.retries = 1;
        let mut totals = OpTotals::default();
        totals.add(&s);
        for _ in 0..2 {
            m.apply(MetricsUpdate::Accepted(vec![(op.clone(), totals)]));
        }
        m.apply(MetricsUpdate::IntervalClosed(ClosedInterval::of(
            &[(op.clone(), &s)],
            1.0,
            2,
            Duration::from_secs(1),
            None,
        )));
        let text = m.render();
        for line in [
            "fleetload_operations_total{operation=\"point_select\",role=\"write\"} 6",
            "fleetload_errors_total{operation=\"point_select\",role=\"write\",class=\"timeout\"} 2",
            "fleetload_errors_total{operation=\"point_select\",role=\"write\",class=\"deadlock\"} 0",
            "fleetload_retries_total{operation=\"point_select\",role=\"write\"} 2",
            "fleetload_achieved_rate{operation=\"point_select\",role=\"write\"} 3",
            "fleetload_response_time_seconds{operation=\"point_select\",role=\"write\",percentile=\"50\"} 0.002",
            "fleetload_target_rate 100",
            "fleetload_workers_connected 2",
            "fleetload_run_info{run_id=\"run-1\",scenario=\"point_select\",target=\"mysql://u:***@h:3306/db\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        // Every sample line belongs to a declared family.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} undeclared"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
