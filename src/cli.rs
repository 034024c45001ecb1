//! Command-line arguments. Every plan key has a flag that overrides the plan file, so a
//! quick run needs no file at all.

use clap::{Args, Parser, Subcommand};
use fleetload_common::plan::RawPlan;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "fleetload",
    version,
    about = "Distributed database load generator: one coordinator, many workers, one exact HDR report."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing's EnvFilter syntax), e.g. "info" or "fleetload_worker=debug".
    #[arg(long, global = true, env = "FLEETLOAD_LOG")]
    pub log: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a demo with no servers: SQLite in a temp dir, a coordinator and 2 workers over loopback gRPC.
    Demo(DemoArgs),
    /// Run a plan on this machine: the coordinator plus N worker processes over loopback gRPC.
    Run(RunArgs),
    /// Serve a run to workers on other hosts and write its report.
    Coordinator(CoordinatorArgs),
    /// Join a coordinator and run the share of the load it assigns.
    Worker(WorkerArgs),
    /// Create the scenario's schema and load its rows.
    Prepare(PrepareArgs),
    /// Find the highest cluster rate that meets the SLOs: step up, then bisect.
    FindCapacity(FindCapacityArgs),
    /// Change a running experiment: status, set-rate, pause, resume, stop.
    Ctl(CtlArgs),
    /// Read a report.json again: print its summary, render its HTML, or compare two runs.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Check a plan and its scenario file against the target: every statement must prepare; nothing runs.
    Check(CheckArgs),
    /// Run a scenario file's [teardown] statements.
    Teardown(CheckArgs),
    /// After a churn run: check every prediction against the model and the inserted rows against the report.
    Verify(VerifyArgs),
    /// Make the PEM files of a secure fleet: a CA, the coordinator's certificate, workers' client certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How long the demo load runs.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Where the report goes. Default: a directory per run, fleetload-report/<run id>/,
    /// with fleetload-report/latest pointing at the newest.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
}

/// The plan file and a flag for every plan key (the keys are `RawPlan`'s: one place).
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct PlanArgs {
    /// TOML plan file; flags override its keys.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub keys: RawPlan,
}

impl PlanArgs {
    /// The flags as a raw plan, to lay over the file.
    pub(crate) fn flags(&self) -> RawPlan {
        self.keys.clone()
    }
}

/// The plan flags of the commands that work on the data, not the load (`prepare`,
/// `check`, `teardown`, `verify`): every key is accepted (one plan file serves every
/// command), but `--help` shows only those these commands use.
#[derive(Debug)]
pub(crate) struct DataPlanArgs(pub PlanArgs);

/// The plan keys the data commands use; the rest are hidden from their help.
const DATA_KEYS: &[&str] = &[
    "plan",
    "target",
    "reader",
    "password_env",
    "auth",
    "password_secret",
    "region",
    "tls_ca",
    "scenario",
    "rows",
    "warehouses",
    "mix",
    "batch",
    "ml",
    "ml_endpoint",
    "ml_delay",
    "ml_row_cost",
    "ml_capacity",
    "seed",
    "connect_timeout",
    "op_timeout",
];

fn hide_load_keys(cmd: clap::Command) -> clap::Command {
    let hidden: Vec<String> = RawPlan::keys()
        .into_iter()
        .filter(|id| !DATA_KEYS.contains(&id.as_str()))
        .collect();
    hidden
        .into_iter()
        .fold(cmd, |c, id| c.mut_arg(id, |a| a.hide(true)))
        .after_help("A plan's load keys (rate, sessions, duration, stages, thresholds, …) are accepted and not used here; `fleetload run --help` lists them.")
}

impl clap::FromArgMatches for DataPlanArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        PlanArgs::from_arg_matches(m).map(DataPlanArgs)
    }
    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }
}

impl clap::Args for DataPlanArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        hide_load_keys(PlanArgs::augment_args(cmd))
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        hide_load_keys(PlanArgs::augment_args_for_update(cmd))
    }
}

impl std::ops::Deref for DataPlanArgs {
    type Target = PlanArgs;
    fn deref(&self) -> &PlanArgs {
        &self.0
    }
}

/// The coordinator's Prometheus endpoint.
#[derive(Debug, Args, Clone)]
pub(crate) struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464. Off unless
    /// given; an address like 0.0.0.0:9464 exposes them to the network, so name it only
    /// when that is wanted.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Keep serving the metrics this long after the run ends, so a scraper gets the
    /// final counts (set it to your scrape interval).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub metrics_hold: Duration,
    /// Serve the live dashboard at http://ADDR/, e.g. 127.0.0.1:8080: the fleet's
    /// throughput, latency, errors and workers every interval, with the controls
    /// (`ctl`'s, behind the same token). Off unless given; loopback unless the address
    /// says otherwise.
    #[arg(long)]
    pub ui_listen: Option<SocketAddr>,
    /// Keep the dashboard (and the final report.html it links) up this long after the
    /// run ends; Ctrl-C ends it sooner.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub ui_hold: Duration,
    /// Viewing the dashboard needs the fleet's token too (by default anyone who reaches
    /// it may view; the controls always need the token when the fleet has one).
    #[arg(long)]
    pub ui_private: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Worker processes to start.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Runtime threads of each worker process (see `fleetload worker --threads`); two
    /// help a closed loop at full speed against a database on the same host.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Where the coordinator listens, so `fleetload ctl --coordinator ADDR` can steer the
    /// run (default: a free loopback port, printed with the ctl command at the start).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Where the report goes. Default: a directory per run, fleetload-report/<run id>/,
    /// with fleetload-report/latest pointing at the newest.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Prepare the data first, through the fleet: the coordinator creates the table and
    /// every worker loads its own shard in parallel.
    #[arg(long)]
    pub prepare: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CoordinatorArgs {
    #[command(flatten)]
    pub security: ServeSecurityArgs,
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Prepare the data first, through the fleet: this coordinator creates the table and
    /// every worker loads its own shard in parallel before the start.
    #[arg(long)]
    pub prepare: bool,
    /// Address to serve workers on, e.g. 0.0.0.0:7400.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    /// Workers to wait for.
    #[arg(long)]
    pub workers: usize,
    /// Workers admitted in all (default: --workers). Those beyond --workers may join
    /// while the run goes; the load is re-split from the next interval on.
    #[arg(long)]
    pub max_workers: Option<usize>,
    /// How long to wait for them.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub join_timeout: Duration,
    /// Where the report goes. Default: a directory per run, fleetload-report/<run id>/,
    /// with fleetload-report/latest pointing at the newest.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
}

/// How a worker or `ctl` reaches the coordinator securely. The token is read from the
/// FLEETLOAD_TOKEN environment variable or a file, never from the command line (where
/// other users of the host could read it).
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ChannelArgs {
    /// CA certificate (PEM) to verify the coordinator with; use an https:// address.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) to present, when the coordinator asks for one (mutual TLS).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the coordinator's certificate carries, when not the address's host.
    #[arg(long)]
    pub tls_domain: Option<String>,
    /// File holding the fleet's token (default: the FLEETLOAD_TOKEN environment variable).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// How the coordinator protects its control channel.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ServeSecurityArgs {
    /// Certificate (PEM) the coordinator presents; turns on TLS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that workers' client certificates must chain to: mutual TLS.
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// File holding the fleet's token (default: the FLEETLOAD_TOKEN environment variable).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Serve plaintext on a non-loopback address anyway (anyone who can reach it could
    /// steer the fleet unless a token is set).
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    pub channel: ChannelArgs,
    /// Only load targets matching these, repeatable: host[:port], *.domain[:port] or
    /// sqlite. An assignment for any other target is refused.
    #[arg(long = "allow-target")]
    pub allow_targets: Vec<fleetload_worker::security::AllowTarget>,
    /// Coordinator address, e.g. http://10.0.0.5:7400.
    #[arg(long, env = "FLEETLOAD_COORDINATOR")]
    pub coordinator: String,
    /// Name in reports (default: host name and process id).
    #[arg(long)]
    pub name: Option<String>,
    /// Relative capacity for the rate split (default: number of cores).
    #[arg(long)]
    pub capacity: Option<f64>,
    /// Most sessions this worker accepts.
    #[arg(long)]
    pub max_sessions: Option<u32>,
    /// How long to keep dialing a coordinator that is not up yet.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub dial_timeout: Duration,
    /// Runtime threads. One thread drives thousands of sessions; more threads add
    /// cross-thread wake-ups that cost CPU per operation. To use more cores, run more
    /// workers (one per core), which also spreads the sessions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Where to write unacknowledged snapshots if the coordinator is lost (created when
    /// missing; the worker refuses to start if it cannot write there).
    #[arg(long, default_value = ".")]
    pub spool_dir: PathBuf,
    /// Test hook: pretend this host's clock is off by this many milliseconds.
    #[arg(long, default_value_t = 0, hide = true, allow_hyphen_values = true)]
    pub clock_skew_ms: i64,
}

#[derive(Debug, Args)]
pub(crate) struct PrepareArgs {
    #[command(flatten)]
    pub plan: DataPlanArgs,
    /// Sessions that load rows in parallel.
    #[arg(long, default_value_t = 4)]
    pub loaders: usize,
}

#[derive(Debug, Args)]
pub(crate) struct FindCapacityArgs {
    #[command(flatten)]
    pub security: ServeSecurityArgs,
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// An SLO every stage must meet, repeatable, e.g. "p99<50ms", "error_rate<0.5%".
    #[arg(long = "slo", required = true)]
    pub slos: Vec<String>,
    /// First cluster rate tried, ops/s.
    #[arg(long)]
    pub start: f64,
    /// Factor the rate grows by after a stage that met the SLOs.
    #[arg(long, default_value_t = 1.5)]
    pub step: f64,
    /// How long each rate is held (whole intervals; the first interval settles).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub stage_length: Duration,
    /// Stop when the highest passing and lowest failing rate are this close (relative).
    #[arg(long, default_value_t = 0.05)]
    pub precision: f64,
    /// Never offer more than this, ops/s.
    #[arg(long)]
    pub max_rate: Option<f64>,
    /// Local worker processes to start (ignored with --listen).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Serve workers on other hosts at this address instead of starting local ones.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// With --listen: workers to wait for.
    #[arg(long, default_value_t = 1)]
    pub remote_workers: usize,
    /// Where the report goes. Default: a directory per run, fleetload-report/<run id>/,
    /// with fleetload-report/latest pointing at the newest.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Prepare the data first, through the fleet.
    #[arg(long)]
    pub prepare: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    /// The coordinator, e.g. http://10.0.0.5:7400 (https:// with TLS).
    #[arg(long, env = "FLEETLOAD_COORDINATOR")]
    pub coordinator: String,
    #[command(flatten)]
    pub channel: ChannelArgs,
    #[command(subcommand)]
    pub action: CtlAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CtlAction {
    /// Print the run's state as JSON.
    Status,
    /// Cluster ops/s (open loop) or active sessions (closed loop), from the next interval.
    SetRate { value: f64 },
    /// Offer no load from the next interval until resumed.
    Pause,
    /// Go back to the load in effect before the pause.
    Resume,
    /// End the run now; the report covers what ran.
    Stop {
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// Print the summary of a report.json.
    Show {
        /// The report.json.
        report: PathBuf,
    },
    /// Render report.html from a report.json.
    Html {
        /// The report.json.
        report: PathBuf,
        /// Where to write it (default: report.html beside the report.json).
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
    /// Per operation, the change in throughput and percentiles from BASE to NEW, marking
    /// changes larger than the noise the two runs' interval series show.
    ///
    /// With --fail-on it is a CI gate: exit status 1 when a change is beyond its limit
    /// and beyond the run-to-run noise.
    Compare {
        /// The baseline report.json.
        base: PathBuf,
        /// The report.json to compare with it.
        new: PathBuf,
        /// Fail (exit 1) when a metric changes beyond this limit and beyond the noise:
        /// "p99 > +10%", "ok_per_s < -5%", or for one operation "read_customer:p99 >
        /// +10%". Metrics: ok_per_s, p50, p90, p99, p99.9, service_p50, service_p99,
        /// error_pct. Repeatable.
        #[arg(long = "fail-on", value_name = "GATE")]
        fail_on: Vec<String>,
        /// How much of a change may be put down to run-to-run noise: `auto` estimates it
        /// from both runs' interval series and caps it at 25 % of the base value; a
        /// percentage (`10%`) caps it there; `off` judges gates by their limits alone.
        #[arg(long, default_value = "auto", value_name = "off|auto|PCT")]
        noise: String,
        /// How to print the comparison.
        #[arg(long, value_enum, default_value_t = CompareFormat::Text)]
        format: CompareFormat,
    },
    /// Rebuild a run's report from its last checkpoint (report.partial.json in DIR)
    /// and the workers' spool files, after the coordinator died or workers were cut
    /// off at the end: every snapshot counted once, the status `recovered`.
    Recover {
        /// The run's report directory (holding report.partial.json), or the file.
        dir: PathBuf,
        /// The workers' spools (fleetload-unsent-<run>-w<N>.jsonl), one per worker.
        spools: Vec<PathBuf>,
        /// A directory holding the spools of many runs (the workers' shared
        /// --spool-dir): this run's are taken from it.
        #[arg(long)]
        spool_dir: Option<PathBuf>,
        /// Where to write the report (default: DIR).
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
}

/// `report compare --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CompareFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub plan: DataPlanArgs,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub plan: DataPlanArgs,
    /// The run's report.json (default: the latest run's).
    #[arg(long, default_value = "fleetload-report/latest/report.json")]
    pub report: PathBuf,
}

/// `fleetload certs`: certificates with the extensions rustls checks (X.509 v3, subject
/// alternative names, key usage, extended key usage), as `cockroach cert` makes them.
#[derive(Debug, Subcommand)]
pub(crate) enum CertsCommand {
    /// A fleet CA: DIR/ca.pem (give it to workers and ctl as --tls-ca, to the
    /// coordinator as --tls-client-ca) and DIR/ca.key (keep it private).
    #[command(name = "create-ca")]
    Ca {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Days the CA is valid from today.
        #[arg(long, default_value_t = 1825, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Replace files that exist.
        #[arg(long)]
        force: bool,
    },
    /// The coordinator's certificate for the names and addresses workers dial:
    /// DIR/coordinator.pem and DIR/coordinator.key (--tls-cert, --tls-key).
    #[command(name = "create-coordinator")]
    Coordinator {
        /// Host names and IP addresses, e.g. coordinator.internal 10.0.3.5 localhost.
        #[arg(required = true)]
        hosts: Vec<String>,
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Days the certificate is valid from today (at most the CA's).
        #[arg(long, default_value_t = 397, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        #[arg(long)]
        force: bool,
    },
    /// A worker's (or ctl's) client certificate for mutual TLS: DIR/worker-NAME.pem and
    /// DIR/worker-NAME.key (--tls-cert, --tls-key).
    #[command(name = "create-worker")]
    Worker {
        name: String,
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Days the certificate is valid from today (at most the CA's).
        #[arg(long, default_value_t = 397, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        #[arg(long)]
        force: bool,
    },
}
