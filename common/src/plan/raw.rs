//! The plan as written: a TOML file or CLI flags, every key optional, unknown keys
//! refused. Validation into a [`super::Plan`] is `validate`'s job.

use crate::PlanError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A plan as written: every key optional. This one struct is the plan file's schema
/// (TOML keys) and the CLI's flags (the same names with `-` for `_`): a key added here
/// exists in both, with one help text.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    /// Database URL without password: mysql://USER@HOST:PORT/DB, postgres://USER@HOST:PORT/DB, sqlite://PATH.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The cluster's reader endpoint (a URL of the same kind as `target`, the writer):
    /// read operations go there, writes to the target. Without it, everything goes to
    /// the target.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reader: Option<String>,
    /// Sessions per worker on the reader (default: as many as `sessions`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reader_sessions: Option<u32>,
    /// Environment variable each worker reads the database password from.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// How workers log in: password (from password_env or password_secret; the default)
    /// or iam (a fresh IAM token for every connection, from the AWS credential chain;
    /// needs TLS in the URL: sslmode=require or ssl-mode=REQUIRED).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<super::AuthKind>,
    /// A Secrets Manager secret (name or ARN) each worker reads the database password
    /// from: RDS's JSON with username and password, or the password alone. Read again
    /// when a login is refused (rotation).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
    /// AWS region of auth = "iam", password_secret and `[cloudwatch]` (default: the AWS
    /// configuration's, AWS_REGION or the profile's).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// CA bundle (PEM) every worker verifies the database with, e.g. the RDS bundle at
    /// /etc/ssl/rds/global-bundle.pem: added to the target and reader URLs with the
    /// mode that checks certificate and host (ssl-mode=VERIFY_IDENTITY, sslmode=verify-full).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<String>,
    /// CloudWatch series of Aurora and SageMaker to put in the report beside the
    /// client's: a `[cloudwatch]` table (db_cluster, db_instances, sagemaker_endpoint,
    /// variant, period, region), or --cloudwatch key=value,….
    #[arg(long, value_parser = super::RawCloudWatch::from_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudwatch: Option<super::RawCloudWatch>,
    /// Scenario: point_select, churn, tpcc, or a scenario file (PATH.toml; see docs/scenarios.md).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// Rows in the scenario's table (the key space).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// TPC-C: warehouses, the key space (each worker's shard is its home warehouses).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warehouses: Option<u64>,
    /// TPC-C in closed loop: each session keys in and thinks as the specification's
    /// terminals do (clause 5.2.5: keying 18 s New-Order, 3 s Payment, 2 s the others;
    /// think times exponential, mean 12/12/10/5/5 s); the report then gives the
    /// efficiency against 12.86 tpmC per warehouse. Default: no waits.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpcc_wait: Option<bool>,
    /// Operation mix, e.g. point_select=3,read_customer=1.
    #[arg(long, value_parser = super::parse_mix)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix: Option<BTreeMap<String, u32>>,
    /// Rows per batched model request (churn: predict_batch, score_new).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// Churn model: standin (fleetload's in-database endpoint) or aurora (a real Aurora ML function).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml: Option<super::MlKind>,
    /// SageMaker endpoint of the Aurora ML function (with --ml aurora).
    #[arg(long, alias = "endpoint")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml_endpoint: Option<String>,
    /// ML stand-in: fixed cost of each request (SageMaker overhead latency), e.g. 5ms.
    /// Named for a run, the coordinator sets it in the database before the start.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml_delay: Option<String>,
    /// ML stand-in: cost per row scored in a request, e.g. 100us.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml_row_cost: Option<String>,
    /// ML stand-in: requests served at once across all sessions (model instances).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml_capacity: Option<u32>,
    /// Sessions (connections) per worker.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u32>,
    /// open (a cluster rate) or closed (sessions back to back).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<super::Mode>,
    /// Cluster rate in operations per second (implies --mode open).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Open-loop arrival process: uniform (evenly spaced) or poisson (like sysbench --rate, pgbench -R).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival: Option<super::Arrival>,
    /// Pause between operations of a session in closed loop, e.g. 10ms.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think_time: Option<String>,
    /// Operations further behind schedule than this are counted as dropped.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_backlog: Option<String>,
    /// Run length, e.g. 30s or 5m.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Leading part of the run left out of the totals (whole intervals).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<String>,
    /// Snapshot interval.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Random seed for keys and data.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Client deadline per operation.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op_timeout: Option<String>,
    /// Deadline for opening one session.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    /// Sessions opened per second per worker.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_rate: Option<u32>,
    /// Liveness lease: a worker that hears nothing from its coordinator this long stops
    /// its load; the coordinator marks a silent worker lost.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// Reconnect every session after this long (±20 % jitter, so they do not move at
    /// once), resolving the host name again: sessions spread over replicas added during
    /// the run and follow an endpoint that moved. Default: keep connections.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connection_age: Option<String>,
    /// How often the coordinator writes the run so far to report.partial.json in the
    /// report directory (`fleetload report recover` rebuilds a report from it), e.g.
    /// 10s (the default); 0s: never.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// How long after the run's planned end a worker that lost its coordinator for a
    /// lease keeps dialing to rejoin its slot (default: one lease); "off": it stops and
    /// spools at once.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejoin: Option<String>,
    /// Arrivals a worker missed while it stalled itself (a frozen process, a starved
    /// host): pace (at most catch_up_factor × its rate until back on schedule, the
    /// default) or burst (all at once).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<super::CatchUp>,
    /// With catch_up = pace: the most a worker sends while catching up, as a multiple of
    /// its rate (default 2).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catch_up_factor: Option<f64>,
    /// When a worker is lost mid-run: rebalance (survivors take over its keys and rate), continue, or abort.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_worker_loss: Option<super::OnWorkerLoss>,
    /// A load stage, repeatable, in order: ramp:DURATION:TO, hold:DURATION, step:TO or
    /// step:TO:DURATION (cluster ops/s, or active sessions in closed loop). In a file:
    /// `[[stage]]` tables.
    #[arg(long = "stage", value_parser = RawStage::from_flag)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Vec<RawStage>>,
    /// A whole-run threshold, repeatable, e.g. "predict_one.p99 < 50ms", "error_rate < 0.5%".
    #[arg(long = "threshold")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<String>>,
    /// Stop the run early when a threshold fails (after --abort-grace).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_on_fail: Option<bool>,
    /// How long a threshold may fail before --abort-on-fail stops the run.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_grace: Option<String>,
}

/// One stage as written: exactly one of `ramp` (with `to`), `hold`, or `step` (with an
/// optional `hold` after it).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<String>>,
}

impl RawStage {
    /// Parse the CLI form: `ramp:60s:5000`, `hold:2m`, `step:8000` or `step:8000:60s`.
    ///
    /// # Errors
    /// The text is not one of those forms.
    pub fn from_flag(text: &str) -> Result<RawStage, String> {
        let parts: Vec<&str> = text.split(':').map(str::trim).collect();
        let num = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("--stage {text:?}: {s:?} is not a number"))
        };
        Ok(match parts.as_slice() {
            ["ramp", d, to] => RawStage { ramp: Some((*d).into()), to: Some(num(to)?), ..RawStage::default() },
            ["hold", d] => RawStage { hold: Some((*d).into()), ..RawStage::default() },
            ["step", to] => RawStage { step: Some(num(to)?), ..RawStage::default() },
            ["step", to, d] => RawStage { step: Some(num(to)?), hold: Some((*d).into()), ..RawStage::default() },
            _ => return Err(format!("--stage {text:?}: write ramp:DURATION:TO, hold:DURATION, step:TO or step:TO:DURATION")),
        })
    }
}

impl RawPlan {
    /// Read and parse a TOML plan file.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, or has an unknown key or a value of the
    /// wrong type (the message names the key and line).
    pub fn from_file(path: &Path) -> Result<Self, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut raw = Self::from_toml(&text).map_err(|message| PlanError::Syntax {
            path: path.to_path_buf(),
            message,
        })?;
        // A scenario file named in a plan file is found beside the plan, wherever the
        // command runs from.
        if let Some(s) = &raw.scenario {
            let file = Path::new(s);
            if is_scenario_file(s) && file.is_relative() {
                if let Some(dir) = path.parent() {
                    raw.scenario = Some(dir.join(file).display().to_string());
                }
            }
        }
        Ok(raw)
    }

    /// Parse TOML text.
    ///
    /// # Errors
    /// The text is not a valid plan; the message says where and why.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        if let Some(moved) = moved_keys(text) {
            return Err(moved);
        }
        toml::from_str(text).map_err(|e| suggest(e.to_string().trim_end()))
    }

    /// What parses but probably does not mean what it says: `thresholds` written under
    /// the last `[[stage]]` (TOML puts every key after a table header into that table),
    /// which then judges that stage only. One sentence each, for the CLI to print.
    pub fn lint_toml(text: &str) -> Vec<String> {
        let Ok(table) = text.parse::<toml::Table>() else {
            return Vec::new();
        };
        let stages = table.get("stage").and_then(toml::Value::as_array);
        let last_has_thresholds = stages
            .and_then(|s| s.last())
            .and_then(toml::Value::as_table)
            .is_some_and(|t| t.contains_key("thresholds"));
        if last_has_thresholds && !table.contains_key("thresholds") {
            vec!["`thresholds` is under the last [[stage]], so it judges that stage only (TOML puts every key after a table header into that table); for the whole run, move it above the first [[stage]]".into()]
        } else {
            Vec::new()
        }
    }

    /// Lay `top` (e.g. CLI flags) over `self`: every key `top` sets wins. Done on the
    /// serialized form (unset keys are not serialized), so no list of keys repeats the
    /// struct's.
    ///
    /// # Errors
    /// A rate or a stage value is not a finite number.
    pub fn overlay(self, top: RawPlan) -> Result<RawPlan, PlanError> {
        let mut base = serialized(&self)?;
        base.extend(serialized(&top)?);
        serde_json::from_value(serde_json::Value::Object(base))
            .map_err(|e| PlanError::invalid("plan", "the flags over the file", e.to_string()))
    }

    /// Every plan key, as the plan file and `--help` name them (`_` for `-`).
    pub fn keys() -> Vec<String> {
        use clap::Args;
        RawPlan::augment_args(clap::Command::new("plan"))
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect()
    }
}

/// The keys a raw plan sets, as JSON. JSON has no NaN or infinity (serde_json writes
/// them as null, and only a float can be one), so those are refused here, by key.
fn serialized(raw: &RawPlan) -> Result<serde_json::Map<String, serde_json::Value>, PlanError> {
    fn has_null(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Null => true,
            serde_json::Value::Array(a) => a.iter().any(has_null),
            serde_json::Value::Object(o) => o.values().any(has_null),
            _ => false,
        }
    }
    let map = match serde_json::to_value(raw) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) | Err(_) => serde_json::Map::new(),
    };
    if let Some((key, _)) = map.iter().find(|(_, v)| has_null(v)) {
        let key = if key == "rate" { "rate" } else { "stage" };
        return Err(PlanError::invalid(
            key,
            "NaN or infinity",
            "a finite number",
        ));
    }
    Ok(map)
}

/// A plan key written after a table header (`[[stage]]`, `[mix]`, `[cloudwatch]`), where
/// TOML makes it that table's: named with its line and the fix, instead of "unknown
/// field" in the table.
fn moved_keys(text: &str) -> Option<String> {
    let keys = RawPlan::keys();
    let mut table: Option<&str> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            table = Some(line);
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let Some(header) = table else {
            continue;
        };
        // Keys of the table itself are fine; a stage's own `thresholds` is one.
        let own: &[&str] = match header {
            "[[stage]]" => &["ramp", "to", "step", "hold", "thresholds"],
            "[cloudwatch]" => &[
                "db_cluster",
                "db_instances",
                "sagemaker_endpoint",
                "variant",
                "period",
                "region",
            ],
            // Operation names and their weights.
            "[mix]" => &[],
            _ => continue,
        };
        if !own.contains(&key) && keys.iter().any(|k| k == key) {
            return Some(format!(
                "line {}: `{key}` is a plan key, but it comes after {header}, so TOML puts it inside that table; move `{key}` above the first table header ([[stage]], [mix], [cloudwatch])",
                n + 1
            ));
        }
    }
    None
}

/// serde's "unknown field `x`, expected one of …" with the nearest key suggested.
fn suggest(message: &str) -> String {
    let Some(rest) = message.split("unknown field `").nth(1) else {
        return message.to_string();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let nearest = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|k| (strsim::damerau_levenshtein(unknown, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d);
    match nearest {
        Some((_, k)) => format!("{message}\ndid you mean `{k}`?"),
        None => message.to_string(),
    }
}

/// Whether a `scenario` value names a file rather than a built-in scenario.
pub fn is_scenario_file(value: &str) -> bool {
    value.ends_with(".toml")
}
