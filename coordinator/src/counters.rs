//! Samples the database's own counters during a run, over one connection of the
//! coordinator's (not one per worker): before the start, at every interval edge, and
//! after the end. The coordinator reads the password from its own environment
//! (`password_env`); if it cannot connect, the report says why and the run goes on.

use fleetload_common::plan::Plan;
use fleetload_db::counters::{sample, Counters};
use fleetload_db::session::ConnectSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One sample: seconds after the start (negative: before it) and the values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    pub values: Counters,
}

/// What the report holds of the database's counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DatabaseCounters {
    /// Why there are no samples, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    pub samples: Vec<Sample>,
    /// Last sample minus first, per counter present in both.
    pub deltas: BTreeMap<String, i64>,
}

/// Sample until `stop` is cancelled (then once more), at `start + k·interval`.
pub async fn run(plan: Plan, start: Instant, stop: CancellationToken) -> DatabaseCounters {
    let spec = match ConnectSpec::new(plan.target.clone(), plan.connect_timeout) {
        Ok(s) => s,
        Err(e) => {
            return DatabaseCounters {
                unavailable: Some(e.to_string()),
                ..Default::default()
            }
        }
    };
    let mut session = match spec.connect().await {
        Ok(s) => s,
        Err(e) => {
            return DatabaseCounters {
                unavailable: Some(e.to_string()),
                ..Default::default()
            }
        }
    };
    let driver = plan.target.driver();
    let mut samples = Vec::new();
    let since = |now: Instant| {
        if now >= start {
            now.duration_since(start).as_secs_f64()
        } else {
            -start.duration_since(now).as_secs_f64()
        }
    };
    samples.push(Sample {
        t_s: since(Instant::now()),
        values: sample(&mut session, driver).await,
    });
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
        samples.push(Sample {
            t_s: since(Instant::now()),
            values: sample(&mut session, driver).await,
        });
        k += 1;
    }
    samples.push(Sample {
        t_s: since(Instant::now()),
        values: sample(&mut session, driver).await,
    });
    session.close().await;
    let deltas = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => b
            .values
            .iter()
            .filter_map(|(k, v)| a.values.get(k).map(|w| (k.clone(), v - w)))
            .collect(),
        _ => BTreeMap::new(),
    };
    let unavailable = samples
        .iter()
        .all(|s| s.values.is_empty())
        .then(|| "the database returned no counters".to_string());
    DatabaseCounters {
        unavailable,
        samples,
        deltas,
    }
}
