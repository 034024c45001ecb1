//! Samples the database's own counters during a run, over one connection of the
//! coordinator's (not one per worker): before the start, at every interval edge, and
//! after the end. The coordinator reads the password from its own environment
//! (`password_env`); if it cannot connect, the report says why and the run goes on.

use fleetload_common::plan::Plan;
use fleetload_db::connect::ConnectSpec;
use fleetload_db::counters::is_gauge;
use fleetload_db::counters::{sample, Counters};
use fleetload_db::session::Session;
use fleetload_report::counters::{DatabaseCounters, Gap, Gauge, Sample};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The sampler's connection: reopened after a failure, at most once per interval.
struct Link {
    spec: ConnectSpec,
    driver: fleetload_common::target::Driver,
    /// The scenario's own counters: the ML stand-in's (churn with `ml = "standin"`),
    /// TPC-C's committed New-Orders.
    extra: Vec<(&'static str, &'static str)>,
    session: Option<Session>,
}

impl Link {
    async fn sample(&mut self) -> Result<Counters, String> {
        if self.session.is_none() {
            self.session = Some(self.spec.connect().await.map_err(|e| e.to_string())?);
        }
        let Some(session) = self.session.as_mut() else {
            return Err("no connection".into());
        };
        let result = sample(session, self.driver, &self.extra).await;
        if result.is_err() {
            if let Some(dead) = self.session.take() {
                dead.close().await;
            }
        }
        result
    }
}

/// Sample until `stop` is cancelled (then once more), at `start + k·interval`. A lost
/// connection is reopened at the next edge; the time between is recorded as a gap.
pub(crate) async fn run(
    plan: Plan,
    start: Instant,
    stop: CancellationToken,
    ui: Option<std::sync::Arc<crate::ui::Hub>>,
) -> DatabaseCounters {
    let spec = match ConnectSpec::new(
        plan.target.clone(),
        plan.connect_timeout
            .min(plan.interval.max(Duration::from_secs(1))),
    ) {
        Ok(s) => s,
        Err(e) => {
            return DatabaseCounters {
                unavailable: Some(e.to_string()),
                ..Default::default()
            }
        }
    };
    // The coordinator's own connection, apart from the workers' in pg_stat_activity.
    let spec = ConnectSpec {
        application: "fleetload coordinator",
        ..spec
    };
    let mut link = Link {
        spec,
        driver: plan.target.driver(),
        extra: match plan.scenario.builtin() {
            Some(fleetload_common::scenario::Scenario::Churn)
                if matches!(plan.ml, fleetload_common::plan::MlMode::StandIn) =>
            {
                fleetload_db::ml::counters(plan.target.driver())
            }
            Some(fleetload_common::scenario::Scenario::Tpcc) => vec![(
                fleetload_common::tpcc::NEW_ORDERS_COUNTER,
                fleetload_db::workloads::tpcc::check::next_order_sum(plan.target.driver()),
            )],
            _ => Vec::new(),
        },
        session: None,
    };
    let since = |now: Instant| {
        if now >= start {
            now.duration_since(start).as_secs_f64()
        } else {
            -start.duration_since(now).as_secs_f64()
        }
    };
    let mut samples = Vec::new();
    let mut gaps: Vec<Gap> = Vec::new();
    let mut take = |t_s: f64, result: Result<Counters, String>, samples: &mut Vec<Sample>| {
        let before = samples.len();
        take_sample(t_s, result, samples, &mut gaps);
        if let (Some(hub), Some(s)) = (&ui, samples.get(before)) {
            hub.publish("counters", s);
        }
    };
    // The first sample decides whether the counters can be read at all.
    match link.sample().await {
        Ok(values) => {
            let first = Sample {
                t_s: since(Instant::now()),
                values,
            };
            if let Some(hub) = &ui {
                hub.publish("counters", &first);
            }
            samples.push(first);
        }
        Err(e) => {
            return DatabaseCounters {
                unavailable: Some(e),
                ..Default::default()
            }
        }
    }
    let mut k: u32 = 1;
    loop {
        let edge = start + plan.interval * k;
        tokio::select! {
            _ = tokio::time::sleep_until(edge) => {}
            _ = stop.cancelled() => break,
        }
        if edge > start + plan.duration + plan.interval {
            // Past the end: wait for the stop, then take the closing sample.
            stop.cancelled().await;
            break;
        }
        let result = link.sample().await;
        take(since(Instant::now()), result, &mut samples);
        k += 1;
    }
    let result = link.sample().await;
    take(since(Instant::now()), result, &mut samples);
    if let Some(session) = link.session.take() {
        session.close().await;
    }
    summarize(samples, gaps)
}

/// Keep a sample, or open a gap in the series when it failed (a gap closes with the
/// next sample that succeeds).
fn take_sample(
    t_s: f64,
    result: Result<Counters, String>,
    samples: &mut Vec<Sample>,
    gaps: &mut Vec<Gap>,
) {
    let open = gaps.last_mut().filter(|g| g.to_s.is_none());
    match (result, open) {
        (Ok(values), Some(gap)) => {
            gap.to_s = Some(t_s);
            samples.push(Sample { t_s, values });
        }
        (Ok(values), None) => samples.push(Sample { t_s, values }),
        (Err(_), Some(_)) => {}
        (Err(error), None) => {
            tracing::warn!(at_s = t_s, %error, "cannot read the database's counters; reconnecting at the next interval");
            gaps.push(Gap {
                from_s: t_s,
                to_s: None,
                error,
            });
        }
    }
}

/// Deltas of the totals and the levels of the gauges over `samples`.
fn summarize(samples: Vec<Sample>, gaps: Vec<Gap>) -> DatabaseCounters {
    let deltas = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => b
            .values
            .iter()
            .filter(|(k, _)| !is_gauge(k))
            .filter_map(|(k, v)| a.values.get(k).map(|w| (k.clone(), v.saturating_sub(*w))))
            .collect(),
        _ => BTreeMap::new(),
    };
    let mut gauges: BTreeMap<String, Gauge> = BTreeMap::new();
    for s in &samples {
        for (k, v) in s.values.iter().filter(|(k, _)| is_gauge(k)) {
            let g = gauges
                .entry(k.clone())
                .or_insert(Gauge { last: *v, max: *v });
            g.last = *v;
            g.max = g.max.max(*v);
        }
    }
    let unavailable = samples
        .iter()
        .all(|s| s.values.is_empty())
        .then(|| "the database returned no counters".to_string());
    DatabaseCounters {
        unavailable,
        samples,
        deltas,
        gauges,
        gaps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_s: f64, pairs: &[(&str, i64)]) -> Sample {
        Sample {
            t_s,
            values: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn totals_become_deltas_and_levels_stay_levels() {
        let c = summarize(
            vec![
                at(0.0, &[("Questions", 100), ("Threads_connected", 3)]),
                at(1.0, &[("Questions", 400), ("Threads_connected", 40)]),
                at(2.0, &[("Questions", 900), ("Threads_connected", 5)]),
            ],
            Vec::new(),
        );
        assert_eq!(c.deltas.get("Questions"), Some(&800));
        assert!(!c.deltas.contains_key("Threads_connected"));
        assert_eq!(c.gauges["Threads_connected"], Gauge { last: 5, max: 40 });
    }
}
