//! The report's companion files for other tools: `report.csv` (one row per interval and
//! operation, for spreadsheets) and `report.hlog` (the HdrHistogram interval log of the
//! cluster's response times, one tag per operation, for HistogramLogAnalyzer and other
//! HdrHistogram tools).

use super::Report;
use fleetload_common::scenario::OpName;
use std::fmt::Write as _;

/// One interval's cluster histogram of one operation, already encoded.
#[derive(Debug, Clone)]
pub struct LoggedInterval {
    pub start_s: f64,
    pub length_s: f64,
    pub operation: OpName,
    pub max_us: u64,
    /// Base64 of V2+deflate, as in report.json.
    pub encoded: String,
}

/// `report.csv`: a header, then one row per interval and operation.
pub(crate) fn csv(r: &Report) -> String {
    let classes = fleetload_common::outcome::ErrorClass::ALL;
    let mut out = String::from("interval,start_s,end_s,warmup,operation,count,ok_per_s,errors,dropped_backlog,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,service_p50_ms,service_p99_ms,schedule_lag_p99_ms");
    for c in classes {
        let _ = write!(out, ",errors_{}", c.name());
    }
    // New columns go last, so scripts that read by position keep working.
    out.push_str(",retries,rows,empty_results,role\n");
    for i in &r.intervals {
        for (op, s) in &i.operations {
            let t = &s.response_time;
            let lag = s
                .schedule_lag
                .as_ref()
                .map_or(String::new(), |l| l.p99_ms.to_string());
            let _ = write!(
                out,
                "{},{},{},{},{op},{},{},{},{},{},{},{},{},{},{},{},{lag}",
                i.index,
                i.start_s,
                i.end_s,
                i.warmup,
                s.count,
                s.ok_per_s,
                s.error_total,
                s.dropped_backlog,
                t.p50_ms,
                t.p90_ms,
                t.p99_ms,
                t.p999_ms,
                t.max_ms,
                s.service_time.p50_ms,
                s.service_time.p99_ms
            );
            for c in classes {
                let _ = write!(out, ",{}", s.errors.get(c.name()).copied().unwrap_or(0));
            }
            let role = r
                .operation_roles
                .get(op)
                .map_or("write", |role| role.name());
            let _ = writeln!(out, ",{},{},{},{role}", s.retries, s.rows, s.empty_results);
        }
    }
    out
}

/// `report.hlog`: HdrHistogram interval log (format of HdrHistogram's
/// HistogramLogWriter). Values are microseconds; Interval_Max is in milliseconds.
pub(crate) fn hlog(r: &Report, start_unix_s: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "#[fleetload run {}: cluster response time (completion - intended start), values in microseconds]", r.run_id);
    let _ = writeln!(
        out,
        "#[StartTime: {start_unix_s:.3} (seconds since epoch), {}]",
        r.started_at
    );
    let _ = writeln!(out, "#[BaseTime: {start_unix_s:.3} (seconds since epoch)]");
    out.push_str("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n");
    for l in &r.interval_log {
        let _ = writeln!(
            out,
            "Tag={},{:.3},{:.3},{:.3},{}",
            l.operation,
            l.start_s,
            l.length_s,
            l.max_us as f64 / 1000.0,
            l.encoded
        );
    }
    out
}
