//! CloudWatch's series for a run's window, through GetMetricData.
//!
//! Which metrics a run wants is the coordinator's business; this module fetches any list
//! of them for a window at one period, page by page, and hands back the points as
//! CloudWatch has them. Throttling and transient failures are retried by the SDK's
//! standard mode with backoff (see [`crate::load`]).

use crate::{AwsConfig, AwsError};
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_smithy_types::DateTime;
use std::time::{Duration, SystemTime};

/// One metric to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    pub namespace: String,
    pub metric: String,
    pub dimensions: Vec<(String, String)>,
    /// Average, Sum, Maximum, … or a percentile such as p99.
    pub stat: String,
}

/// GetMetricData takes at most this many queries per call.
const QUERIES_PER_CALL: usize = 500;

/// A CloudWatch client.
#[derive(Debug, Clone)]
pub struct CloudWatch {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatch {
    pub fn new(config: &AwsConfig) -> Self {
        CloudWatch {
            client: aws_sdk_cloudwatch::Client::new(&config.sdk),
        }
    }

    /// Every spec's points in `[start, end)` at `period`, oldest first; a metric
    /// CloudWatch has no data for gives an empty list. Also the messages CloudWatch
    /// attached (a partial result, a bad query), for the report's notes.
    ///
    /// # Errors
    /// CloudWatch could not be reached or refused the request (after the retries).
    pub async fn fetch(
        &self,
        specs: &[MetricSpec],
        start: SystemTime,
        end: SystemTime,
        period: Duration,
    ) -> Result<(Vec<Vec<(SystemTime, f64)>>, Vec<String>), AwsError> {
        let period_s = i32::try_from(period.as_secs().max(1)).unwrap_or(i32::MAX);
        let mut points = vec![Vec::new(); specs.len()];
        let mut notes = Vec::new();
        for (chunk_index, chunk) in specs.chunks(QUERIES_PER_CALL).enumerate() {
            let queries: Vec<MetricDataQuery> = chunk
                .iter()
                .enumerate()
                .map(|(i, s)| query(&format!("m{i}"), s, period_s))
                .collect();
            let mut next: Option<String> = None;
            // Pages are bounded: one per 100 800 points at most, far beyond a run.
            for _ in 0..1000 {
                let out = self
                    .client
                    .get_metric_data()
                    .set_metric_data_queries(Some(queries.clone()))
                    .start_time(DateTime::from(start))
                    .end_time(DateTime::from(end))
                    .scan_by(ScanBy::TimestampAscending)
                    .set_next_token(next.take())
                    .send()
                    .await
                    .map_err(|e| AwsError::CloudWatch(crate::describe(&e)))?;
                for result in out.metric_data_results() {
                    let Some(i) = result
                        .id()
                        .and_then(|id| id.strip_prefix('m'))
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|i| *i < chunk.len())
                    else {
                        continue;
                    };
                    let target = &mut points[chunk_index * QUERIES_PER_CALL + i];
                    for (t, v) in result.timestamps().iter().zip(result.values()) {
                        if let Ok(t) = SystemTime::try_from(*t) {
                            if v.is_finite() {
                                target.push((t, *v));
                            }
                        }
                    }
                    for m in result.messages() {
                        if let Some(text) = m.value() {
                            notes.push(format!("{}: {text}", chunk[i].metric));
                        }
                    }
                }
                match out.next_token() {
                    Some(t) if !t.is_empty() => next = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        for series in &mut points {
            series.sort_by_key(|(t, _)| *t);
            series.dedup_by_key(|(t, _)| *t);
        }
        Ok((points, notes))
    }
}

fn query(id: &str, spec: &MetricSpec, period_s: i32) -> MetricDataQuery {
    let dimensions = spec
        .dimensions
        .iter()
        .map(|(n, v)| Dimension::builder().name(n).value(v).build())
        .collect();
    MetricDataQuery::builder()
        .id(id)
        .return_data(true)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(&spec.namespace)
                        .metric_name(&spec.metric)
                        .set_dimensions(Some(dimensions))
                        .build(),
                )
                .period(period_s)
                .stat(&spec.stat)
                .build(),
        )
        .build()
}
