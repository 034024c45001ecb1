//! What Aurora and the SageMaker endpoint saw while the clients measured: CloudWatch's
//! series for the run's window, on the run's timeline, in report.json and beside the
//! client's charts in report.html.
//!
//! The poller is its own task and nothing waits on it while the run runs: it fetches the
//! window so far at the start and every `max(period, 15 s)` (the live dashboard shows
//! each fetch), and once more
//! when the run ends, because CloudWatch publishes late; that last fetch is bounded, and
//! a CloudWatch that cannot be reached leaves a note, never a failed run. A metric with
//! no data (a provisioned cluster has no ACU, a writer no replica lag) is left out.

use fleetload_aws::cloudwatch::{CloudWatch, MetricSpec};
use fleetload_common::plan::CloudWatchPlan;
use fleetload_report::cloudwatch::{CloudWatchJson, CloudWatchSeries};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// The last fetch, after the run, may take this long (the SDK's retries included).
const FINAL_FETCH: Duration = Duration::from_secs(20);
/// The shortest time between fetches while the run runs.
const MIN_POLL: Duration = Duration::from_secs(15);

/// A metric fleetload reads: its name, CloudWatch statistic and unit.
struct Known {
    metric: &'static str,
    stat: &'static str,
    unit: &'static str,
}

const fn known(metric: &'static str, stat: &'static str, unit: &'static str) -> Known {
    Known { metric, stat, unit }
}

/// Aurora's metrics, for a cluster and for each instance (Serverless v2's capacity
/// and utilisation among them; absent on provisioned clusters).
const AURORA: &[Known] = &[
    known("CPUUtilization", "Average", "Percent"),
    known("DatabaseConnections", "Average", "Count"),
    known("DBLoad", "Average", "Sessions"),
    known("CommitLatency", "Average", "Milliseconds"),
    known("Deadlocks", "Average", "Count/Second"),
    known("AuroraReplicaLag", "Average", "Milliseconds"),
    known("FreeableMemory", "Average", "Bytes"),
    known("ServerlessDatabaseCapacity", "Average", "ACU"),
    known("ACUUtilization", "Average", "Percent"),
];

/// The SageMaker endpoint's metrics, per variant.
const SAGEMAKER: &[Known] = &[
    known("Invocations", "Sum", "Count"),
    known("InvocationsPerInstance", "Sum", "Count"),
    known("ModelLatency", "Average", "Microseconds"),
    known("OverheadLatency", "Average", "Microseconds"),
    known("Invocation4XXErrors", "Sum", "Count"),
    known("Invocation5XXErrors", "Sum", "Count"),
];

/// The metrics a plan asks for, with their units.
fn specs(plan: &CloudWatchPlan) -> Vec<(MetricSpec, &'static str)> {
    let mut out = Vec::new();
    let mut add = |namespace: &str, known: &[Known], dimensions: Vec<(String, String)>| {
        for k in known {
            out.push((
                MetricSpec {
                    namespace: namespace.to_string(),
                    metric: k.metric.to_string(),
                    dimensions: dimensions.clone(),
                    stat: k.stat.to_string(),
                },
                k.unit,
            ));
        }
    };
    if let Some(c) = &plan.db_cluster {
        add(
            "AWS/RDS",
            AURORA,
            vec![("DBClusterIdentifier".into(), c.clone())],
        );
    }
    for i in &plan.db_instances {
        add(
            "AWS/RDS",
            AURORA,
            vec![("DBInstanceIdentifier".into(), i.clone())],
        );
    }
    if let Some(e) = &plan.sagemaker_endpoint {
        add(
            "AWS/SageMaker",
            SAGEMAKER,
            vec![
                ("EndpointName".into(), e.clone()),
                ("VariantName".into(), plan.variant.clone()),
            ],
        );
    }
    out
}

/// Seconds from `start` to `t` (negative before it).
fn offset(start: SystemTime, t: SystemTime) -> f64 {
    match t.duration_since(start) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// `t` rounded down (or up) to a whole multiple of `period` since the epoch.
fn align(t: SystemTime, period: Duration, up: bool) -> SystemTime {
    let p = period.as_secs().max(1);
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut whole = since.as_secs() - since.as_secs() % p;
    if up && Duration::from_secs(whole) < since {
        whole += p;
    }
    std::time::UNIX_EPOCH + Duration::from_secs(whole)
}

/// Fetch the window from one period before `start` to one after `until`.
async fn fetch(
    cw: &CloudWatch,
    plan: &CloudWatchPlan,
    start: SystemTime,
    until: SystemTime,
) -> Result<(Vec<CloudWatchSeries>, Vec<String>), String> {
    let specs = specs(plan);
    let list: Vec<MetricSpec> = specs.iter().map(|(s, _)| s.clone()).collect();
    // On the period's grid, as CloudWatch keeps its points.
    let from = align(start - plan.period, plan.period, false);
    let to = align(until + plan.period, plan.period, true);
    let (points, notes) = cw
        .fetch(&list, from, to, plan.period)
        .await
        .map_err(|e| e.to_string())?;
    let series = specs
        .into_iter()
        .zip(points)
        .filter(|(_, p)| !p.is_empty())
        .map(|((spec, unit), p)| CloudWatchSeries {
            namespace: spec.namespace,
            metric: spec.metric,
            dimensions: spec.dimensions.into_iter().collect(),
            stat: spec.stat,
            unit: unit.to_string(),
            points: p.into_iter().map(|(t, v)| [offset(start, t), v]).collect(),
        })
        .collect();
    Ok((series, notes))
}

/// Poll until `stop`, then fetch once more (bounded) and return what the report holds.
/// `start` is the run's start on the coordinator's clock.
pub(crate) async fn run(
    plan: CloudWatchPlan,
    start: SystemTime,
    stop: CancellationToken,
    ui: Option<std::sync::Arc<crate::ui::Hub>>,
) -> CloudWatchJson {
    let mut out = CloudWatchJson {
        region: plan.region.clone(),
        period_s: plan.period.as_secs(),
        start_unix_s: start
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64(),
        ..Default::default()
    };
    let config = match fleetload_aws::load(plan.region.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            out.notes.push(format!("CloudWatch was not read: {e}"));
            return out;
        }
    };
    out.region = config.region().map(str::to_string);
    let cw = CloudWatch::new(&config);
    let poll = plan.period.max(MIN_POLL);
    let mut last_error: Option<String> = None;
    // The first fetch at once (what was published before the start, for the live
    // view), then every `poll`.
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => break,
        }
        wait = poll;
        let fetching = fetch(&cw, &plan, start, SystemTime::now());
        let result = tokio::select! {
            r = fetching => r,
            () = stop.cancelled() => break,
        };
        match result {
            Ok((series, _)) => {
                out.series = series;
                last_error = None;
                if let Some(hub) = &ui {
                    hub.publish("cloudwatch", &out);
                }
            }
            Err(e) => {
                if last_error.as_deref() != Some(&e) {
                    tracing::warn!(error = %e, "cannot read CloudWatch; the run goes on and tries again");
                }
                last_error = Some(e);
            }
        }
    }
    match tokio::time::timeout(FINAL_FETCH, fetch(&cw, &plan, start, SystemTime::now())).await {
        Ok(Ok((series, notes))) => {
            out.series = series;
            out.notes.extend(notes);
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read CloudWatch after the run");
            out.notes.push(format!(
                "could not read CloudWatch after the run ({e}); {}",
                if out.series.is_empty() {
                    "no series"
                } else {
                    "the series end at the last fetch during the run"
                }
            ));
        }
        Err(_) => out.notes.push(format!(
            "CloudWatch did not answer within {}s after the run; {}",
            FINAL_FETCH.as_secs(),
            if out.series.is_empty() {
                "no series"
            } else {
                "the series end at the last fetch during the run"
            }
        )),
    }
    if out.series.is_empty() && out.notes.is_empty() {
        out.notes.push("CloudWatch had no data for these metrics in the run's window (they are published about a minute late; a short run may end before its first point)".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_asks_for_each_source_s_metrics_with_its_dimensions() {
        let plan = CloudWatchPlan {
            region: None,
            db_cluster: Some("churn".into()),
            db_instances: vec!["churn-1".into()],
            sagemaker_endpoint: Some("ep".into()),
            variant: "AllTraffic".into(),
            period: Duration::from_secs(60),
        };
        let s = specs(&plan);
        assert_eq!(s.len(), 2 * AURORA.len() + SAGEMAKER.len());
        let model = s.iter().find(|(m, _)| m.metric == "ModelLatency").unwrap();
        assert_eq!(
            model.0.dimensions,
            [
                ("EndpointName".to_string(), "ep".to_string()),
                ("VariantName".into(), "AllTraffic".into())
            ]
        );
        assert_eq!(model.1, "Microseconds");
        assert!(s
            .iter()
            .any(|(m, _)| m.metric == "ACUUtilization" && m.dimensions[0].1 == "churn-1"));
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(offset(start, start + Duration::from_millis(1500)), 1.5);
        assert_eq!(offset(start, start - Duration::from_secs(60)), -60.0);
        let minute = Duration::from_secs(60);
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(125_500);
        assert_eq!(
            align(t, minute, false),
            SystemTime::UNIX_EPOCH + Duration::from_secs(120)
        );
        assert_eq!(
            align(t, minute, true),
            SystemTime::UNIX_EPOCH + Duration::from_secs(180)
        );
        assert_eq!(
            align(SystemTime::UNIX_EPOCH + minute, minute, true),
            SystemTime::UNIX_EPOCH + minute
        );
    }
}
