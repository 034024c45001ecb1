//! What each subcommand does: build the plan, start the parts, print and write the
//! report, and choose the exit status (0 passed, 1 failed, 130 interrupted).

use crate::cli::{
    CheckArgs, Cli, Command, CoordinatorArgs, CtlAction, CtlArgs, DemoArgs, FindCapacityArgs,
    MetricsArgs, PlanArgs, PrepareArgs, ReportCommand, RunArgs, VerifyArgs, WorkerArgs,
};
use anyhow::{bail, Context};
use fleetload_common::plan::{Plan, RawPlan};
use fleetload_coordinator::{CoordinatorConfig, Report, RunStatus};
use fleetload_db::PrepareSpec;
use fleetload_worker::WorkerConfig;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub fn init_logging(cli: &Cli) {
    // demo and run print their own live lines; the coordinator's and worker's own logs
    // would interleave with them.
    let default = match cli.command {
        Command::Worker(_) => "warn,fleetload_worker=info",
        Command::Coordinator(_) => "warn,fleetload_coordinator=info,fleetload=info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_new(cli.log.as_deref().unwrap_or(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::live::LogWriter)
        .with_ansi(crate::live::stdout_is_fancy())
        .with_target(false)
        .init();
}

/// A token cancelled by the first Ctrl-C or SIGTERM; a second signal exits at once.
fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let wait = async {
            match term.as_mut() {
                Some(s) => {
                    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = s.recv() => {} }
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        wait.await;
        crate::live::console()
            .log(b"stopping: collecting final snapshots (press Ctrl-C again to exit at once)\n");
        t.cancel();
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(130);
    });
    token
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo(a).await,
        Command::Run(a) => run(a).await,
        Command::Coordinator(a) => coordinator(a).await,
        Command::Worker(a) => worker(a).await,
        Command::Prepare(a) => prepare(a).await,
        Command::Verify(a) => verify(a).await,
        Command::Check(a) => check(a).await,
        Command::Report(c) => report(c),
        Command::Ctl(a) => ctl(a).await,
        Command::Certs(c) => {
            for p in crate::certs::run(&c)? {
                println!("wrote {}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::FindCapacity(a) => find_capacity(a).await,
        Command::Teardown(a) => teardown(a).await,
    }
}

fn load_plan(args: &PlanArgs) -> anyhow::Result<Plan> {
    let file = match &args.plan {
        Some(path) => RawPlan::from_file(path)?,
        None => RawPlan::default(),
    };
    Ok(Plan::try_from(file.overlay(args.flags())?)?)
}

/// The ML stand-in `prepare` installs: the plan's settings, the defaults for the rest.
fn ml_settings(plan: &Plan) -> fleetload_db::ml::MlSettings {
    let d = fleetload_db::ml::MlSettings::default();
    fleetload_db::ml::MlSettings {
        overhead: plan.standin.delay.unwrap_or(d.overhead),
        row_cost: plan.standin.row_cost.unwrap_or(d.row_cost),
        capacity: plan.standin.capacity.unwrap_or(d.capacity),
    }
}

/// What `prepare` does for a plan, locally or through the fleet.
fn prepare_spec(plan: &Plan, loaders: usize, ml: fleetload_db::ml::MlSettings) -> PrepareSpec {
    PrepareSpec {
        target: plan.target.clone(),
        scenario: plan.scenario.clone(),
        rows: plan.rows,
        seed: plan.seed,
        sessions: loaders,
        connect_timeout: plan.connect_timeout,
        ml,
        aurora_endpoint: match &plan.ml {
            fleetload_common::plan::MlMode::Aurora { endpoint } => Some(endpoint.clone()),
            fleetload_common::plan::MlMode::StandIn => None,
        },
        batch: plan.batch,
    }
}

async fn prepare_plan(
    plan: &Plan,
    loaders: usize,
    ml: fleetload_db::ml::MlSettings,
) -> anyhow::Result<()> {
    println!(
        "preparing {} rows of {} on {} ...",
        plan.rows,
        plan.scenario.name(),
        plan.target
    );
    let done = fleetload_db::prepare(&prepare_spec(plan, loaders, ml)).await?;
    let secs = done.elapsed.as_secs_f64();
    println!(
        "prepared {} rows in {} in {secs:.2}s ({:.0} rows/s)",
        done.rows,
        done.table,
        done.rows as f64 / secs.max(1e-9)
    );
    Ok(())
}

async fn prepare(args: PrepareArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.plan)?;
    prepare_plan(&plan, args.loaders, ml_settings(&plan)).await?;
    Ok(ExitCode::SUCCESS)
}

/// Prepare every statement of the plan's operations on one session, as each worker does
/// before a run, and say what was checked.
async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.plan)?;
    let connect =
        fleetload_db::session::ConnectSpec::new(plan.target.clone(), plan.connect_timeout)?;
    let mut session = connect.connect().await?;
    let names: Vec<_> = plan.mix.iter().map(|(op, _)| op.clone()).collect();
    match &plan.scenario {
        fleetload_common::scenario::ScenarioRef::File(file) => {
            let workload = fleetload_db::custom::CustomWorkload::new(
                std::sync::Arc::clone(file),
                plan.target.driver(),
                &names,
            )
            .map_err(anyhow::Error::msg)?;
            let result = workload.check(&mut session).await;
            session.close().await;
            result.map_err(anyhow::Error::msg)?;
            let statements: usize = names
                .iter()
                .filter_map(|n| file.operation(n))
                .map(|o| o.statements.len())
                .sum();
            println!(
                "{}: {} operations, {statements} statements prepare on {}",
                file.origin,
                names.len(),
                plan.target
            );
        }
        fleetload_common::scenario::ScenarioRef::Builtin(s) => {
            let ops: Vec<_> = names.iter().filter_map(|n| n.builtin()).collect();
            let workload = fleetload_db::workload::Workload::new(
                plan.target.driver(),
                *s,
                plan.seed,
                plan.batch,
                matches!(plan.ml, fleetload_common::plan::MlMode::Aurora { .. }),
            );
            let highest = fleetload_db::workload::key_space(&mut session, *s).await;
            // Without `rows` in the plan, a run takes the table's key space.
            let rows = match highest {
                Ok(Some(n)) if !plan.rows_given && n > 0 => n,
                _ => plan.rows,
            };
            let result = workload
                .check(
                    &mut session,
                    plan.target.driver(),
                    &ops,
                    plan.target.url(),
                    rows,
                )
                .await;
            session.close().await;
            result.map_err(anyhow::Error::msg)?;
            println!(
                "{}: {} operations prepare on {}; `{}` holds keys 1..={rows}",
                s.name(),
                ops.len(),
                plan.target,
                s.table()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `fleetload find-capacity`: one run whose rate the coordinator steers.
async fn find_capacity(args: FindCapacityArgs) -> anyhow::Result<ExitCode> {
    if !(args.start.is_finite() && args.start > 0.0) {
        bail!(
            "--start {}: the first rate must be above 0 ops/s",
            args.start
        );
    }
    if !(args.step.is_finite() && args.step > 1.0 && args.step <= 100.0) {
        bail!(
            "--step {}: the growth factor must be above 1 (e.g. 1.5) and at most 100",
            args.step
        );
    }
    if !(args.precision > 0.0 && args.precision < 1.0) {
        bail!(
            "--precision {}: a fraction such as 0.05 (5 %)",
            args.precision
        );
    }
    let mut flags = args.plan.flags();
    flags.mode = Some(fleetload_common::plan::Mode::Open);
    flags.rate = Some(args.start);
    let file = match &args.plan.plan {
        Some(path) => RawPlan::from_file(path)?,
        None => RawPlan::default(),
    };
    let mut raw = file.overlay(flags)?;
    if raw.stage.is_some() {
        bail!("find-capacity sets the load itself: drop the plan's stages");
    }
    raw.duration.get_or_insert_with(|| "30m".into());
    let plan = Plan::try_from(raw)?;
    let names: Vec<String> = plan.mix.iter().map(|(o, _)| o.to_string()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let slos = args
        .slos
        .iter()
        .map(|t| {
            fleetload_common::threshold::Threshold::parse(t, &refs)
                .map_err(|e| anyhow::anyhow!("--slo {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.stage_length < plan.interval * 2 {
        bail!(
            "--stage-length {}: at least two intervals ({} each), the first of which settles",
            humantime::format_duration(args.stage_length),
            humantime::format_duration(plan.interval)
        );
    }
    let search = fleetload_coordinator::search::SearchSpec {
        slos,
        start: args.start,
        factor: args.step,
        stage: args.stage_length,
        precision: args.precision,
        max_rate: args.max_rate,
    };
    let prepare = args
        .prepare
        .then(|| prepare_spec(&plan, 4, ml_settings(&plan)));
    println!(
        "finding the capacity of {} for {} from {} ops/s (×{} per stage of {}, then bisecting to {:.0}%)",
        plan.target,
        args.slos.join(", "),
        args.start,
        args.step,
        humantime::format_duration(args.stage_length),
        args.precision * 100.0
    );
    match args.listen {
        None => {
            local_fleet_search(
                plan,
                LocalWorkers {
                    count: args.workers,
                    threads: 1,
                },
                Output {
                    dir: args.report_dir.as_deref(),
                    ..Output::default()
                },
                prepare,
                None,
                Some(search),
            )
            .await
        }
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            println!("waiting for {} workers on {addr}", args.remote_workers);
            let report = serve(
                listener,
                plan,
                args.remote_workers,
                Duration::from_secs(60),
                prepare,
                None,
                Some(search),
                args.remote_workers,
                server_security(&args.security, addr)?,
                shutdown_token(),
            )
            .await?;
            finish(
                report,
                Output {
                    dir: args.report_dir.as_deref(),
                    ..Output::default()
                },
            )
        }
    }
}

/// The fleet's token: from `file`, else the FLEETLOAD_TOKEN environment variable.
fn read_token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let raw = match file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("--token-file {}: cannot read it", p.display()))?,
        ),
        None => std::env::var("FLEETLOAD_TOKEN").ok(),
    };
    Ok(match raw {
        Some(t) => Some(
            fleetload_worker::security::Token::new(&t)
                .map_err(|e| anyhow::anyhow!("fleet token: {e}"))?
                .expose()
                .to_string(),
        ),
        None => None,
    })
}

fn read_pem(what: &str, p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("{what} {}: cannot read it", p.display()))
}

/// A worker's or ctl's TLS and token.
fn client_security(
    a: &crate::cli::ChannelArgs,
) -> anyhow::Result<fleetload_worker::security::ClientSecurity> {
    Ok(fleetload_worker::security::ClientSecurity {
        ca_pem: a
            .tls_ca
            .as_deref()
            .map(|p| read_pem("--tls-ca", p))
            .transpose()?,
        identity: match (&a.tls_cert, &a.tls_key) {
            (Some(c), Some(k)) => Some((read_pem("--tls-cert", c)?, read_pem("--tls-key", k)?)),
            _ => None,
        },
        domain: a.tls_domain.clone(),
        token: read_token(a.token_file.as_deref())?
            .map(|t| fleetload_worker::security::Token::new(&t))
            .transpose()
            .map_err(anyhow::Error::msg)?,
    })
}

/// The coordinator's TLS and token; plaintext only on loopback unless --insecure.
fn server_security(
    a: &crate::cli::ServeSecurityArgs,
    listen: std::net::SocketAddr,
) -> anyhow::Result<fleetload_coordinator::security::ServerSecurity> {
    let identity = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some((read_pem("--tls-cert", c)?, read_pem("--tls-key", k)?)),
        _ => None,
    };
    let token = read_token(a.token_file.as_deref())?;
    if identity.is_none() && !listen.ip().is_loopback() {
        if !a.insecure {
            bail!(
                "refusing to serve the control channel in plaintext on {listen}: give --tls-cert and --tls-key (and workers --tls-ca with an https:// address), or --insecure to accept that anyone on the network can read it{}",
                if token.is_none() { " and steer the fleet (no token is set either)" } else { "" }
            );
        }
        eprintln!(
            "WARNING: serving the control channel in plaintext on {listen} (--insecure){}",
            if token.is_none() {
                "; without a token anyone who can reach it can steer the fleet"
            } else {
                ""
            }
        );
    }
    let security = fleetload_coordinator::security::ServerSecurity {
        identity,
        client_ca: a
            .tls_client_ca
            .as_deref()
            .map(|p| read_pem("--tls-client-ca", p))
            .transpose()?,
        token: token.map(std::sync::Arc::from),
    };
    // Load the certificate now, so a bad file is named before "listening", not after.
    if let Some(tls) = security.tls() {
        tonic::transport::Server::builder()
            .tls_config(tls)
            .map_err(|e| {
                anyhow::anyhow!(
                    "--tls-cert/--tls-key/--tls-client-ca: {} (each must be PEM: an X.509 v3 certificate, its private key, a CA certificate; `fleetload certs` makes them)",
                    fleetload_worker::security::error_chain(&e)
                )
            })?;
    }
    Ok(security)
}

/// `fleetload ctl`: one command to a running coordinator.
async fn ctl(args: CtlArgs) -> anyhow::Result<ExitCode> {
    use fleetload_common::wire::{command_request, reply_from, Command};
    let endpoint = if args.coordinator.contains("://") {
        args.coordinator.clone()
    } else {
        format!("http://{}", args.coordinator)
    };
    // Dial exactly as a worker does: the same TLS, client certificate and token.
    let security = client_security(&args.channel)?;
    let channel = security
        .endpoint(&endpoint)
        .map_err(|e| anyhow::anyhow!("--coordinator {}: {e}", args.coordinator))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the coordinator at {endpoint}: {}",
                fleetload_worker::security::explain_connect_error(&e, &endpoint)
            )
        })?;
    let mut client = security.client(channel);
    let command = match &args.action {
        CtlAction::Status => Command::Status,
        CtlAction::SetRate { value } => Command::SetRate(*value),
        CtlAction::Pause => Command::Pause,
        CtlAction::Resume => Command::Resume,
        CtlAction::Stop { reason } => Command::Stop(reason.clone()),
    };
    let reply = client
        .command(command_request(&command))
        .await
        .map_err(|s| match s.code() {
            tonic::Code::Unauthenticated
            | tonic::Code::InvalidArgument
            | tonic::Code::Unavailable => anyhow::anyhow!("{}", s.message()),
            _ => anyhow::anyhow!("{}", security.explain_stream_error(&s, &endpoint)),
        })?
        .into_inner();
    let reply = reply_from(reply)
        .map_err(|e| anyhow::anyhow!("the coordinator's answer is not understood: {e}"))?;
    if let Some(status) = &reply.status {
        println!("{}", serde_json::to_string_pretty(status)?);
    } else {
        println!("{}", reply.message);
    }
    Ok(if reply.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn report(command: ReportCommand) -> anyhow::Result<ExitCode> {
    let read = |p: &Path| Report::from_json_file(p).map_err(anyhow::Error::msg);
    match command {
        ReportCommand::Show { report } => {
            print!(
                "{}",
                fleetload_coordinator::report::text::render(&read(&report)?)
            );
        }
        ReportCommand::Html { report, out } => {
            let r = read(&report)?;
            let out = out.unwrap_or_else(|| report.with_file_name("report.html"));
            std::fs::write(&out, fleetload_coordinator::report::html::render(&r))
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("wrote {}", out.display());
        }
        ReportCommand::Compare { base, new } => {
            print!(
                "{}",
                fleetload_coordinator::report::compare::render(&read(&base)?, &read(&new)?)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn teardown(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.plan)?;
    let spec = prepare_spec(&plan, 1, fleetload_db::ml::MlSettings::default());
    let ran = fleetload_db::prepare::teardown(&spec)
        .await
        .map_err(|e| anyhow::anyhow!("teardown failed on {}: {}", e.target, e.message))?;
    println!(
        "ran {ran} teardown statements of {} on {}",
        plan.scenario.name(),
        plan.target
    );
    Ok(ExitCode::SUCCESS)
}

/// Where a run's report goes: the directory asked for, or one of its own under
/// `fleetload-report/`, so no run overwrites another's.
const REPORTS: &str = "fleetload-report";

/// Where a report goes, and what the summary should know about the target.
#[derive(Debug, Clone, Copy, Default)]
struct Output<'a> {
    /// `None`: a directory of its own under `fleetload-report/`.
    dir: Option<&'a Path>,
    /// The target was a scratch database that goes away with the command (the demo).
    scratch: bool,
}

fn finish(mut report: Report, out: Output<'_>) -> anyhow::Result<ExitCode> {
    report.scratch_target = out.scratch;
    let report = &report;
    let dir = out.dir;
    println!();
    print!("{}", fleetload_coordinator::report::text::render(report));
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => Path::new(REPORTS).join(&report.run_id),
    };
    report.write_to(&dir)?;
    if dir.parent() == Some(Path::new(REPORTS)) {
        point_latest_at(&dir);
    }
    println!("report written to {}", dir.join("report.json").display());
    Ok(match report.status {
        RunStatus::Passed => ExitCode::SUCCESS,
        RunStatus::Failed => ExitCode::FAILURE,
        RunStatus::Interrupted => ExitCode::from(130),
    })
}

/// `fleetload-report/latest` → the newest run's directory (a relative link, so the tree
/// can be moved). A failure is only a warning: the report itself is written.
fn point_latest_at(dir: &Path) {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return;
    };
    let latest = parent.join("latest");
    let fresh = parent.join(".latest.tmp");
    let _ = std::fs::remove_file(&fresh);
    #[cfg(unix)]
    let linked =
        std::os::unix::fs::symlink(name, &fresh).and_then(|()| std::fs::rename(&fresh, &latest));
    #[cfg(not(unix))]
    let linked: std::io::Result<()> = Ok(());
    if let Err(e) = linked {
        tracing::warn!(error = %e, link = %latest.display(), "cannot point the latest link at this run");
    }
}

/// The Prometheus endpoint while it is served.
struct MetricsServer {
    addr: std::net::SocketAddr,
    metrics: std::sync::Arc<fleetload_coordinator::metrics::Metrics>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    hold: Duration,
}

impl MetricsServer {
    async fn start(args: &MetricsArgs) -> anyhow::Result<Option<MetricsServer>> {
        let Some(addr) = args.metrics_listen else {
            return Ok(None);
        };
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("--metrics-listen {addr}: cannot listen there"))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            eprintln!("note: metrics at http://{addr}/metrics are reachable from the network");
        }
        let metrics = std::sync::Arc::new(fleetload_coordinator::metrics::Metrics::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(fleetload_coordinator::metrics::serve(
            listener,
            std::sync::Arc::clone(&metrics),
            stop.clone(),
        ));
        println!("metrics at http://{addr}/metrics");
        Ok(Some(MetricsServer {
            addr,
            metrics,
            stop,
            task,
            hold: args.metrics_hold,
        }))
    }

    /// Keep serving for the hold (the report is written by then), then stop.
    async fn close(self) {
        if !self.hold.is_zero() {
            println!(
                "metrics stay at http://{}/metrics for {}",
                self.addr,
                humantime::format_duration(self.hold)
            );
            tokio::time::sleep(self.hold).await;
        }
        self.stop.cancel();
        let _ = self.task.await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    listener: TcpListener,
    plan: Plan,
    workers: usize,
    join_timeout: Duration,
    prepare: Option<PrepareSpec>,
    metrics: Option<&MetricsServer>,
    search: Option<fleetload_coordinator::search::SearchSpec>,
    max_workers: usize,
    security: fleetload_coordinator::security::ServerSecurity,
    shutdown: CancellationToken,
) -> anyhow::Result<Report> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut display = crate::live::Display::new(
        format!(
            "fleetload · {} · {} · {}",
            plan.scenario.name(),
            plan.target,
            fleetload_coordinator::report::count_of(workers, "worker", "workers")
        ),
        search.is_none().then_some(plan.duration),
        plan.warmup,
        workers,
    );
    let unit = match plan.load {
        fleetload_common::plan::LoadModel::Open { .. } => "ops/s",
        fleetload_common::plan::LoadModel::Closed { .. } => "sessions",
    };
    display.stages = plan
        .stages
        .iter()
        .map(|st| (st.start, st.start + st.duration, st.describe(unit)))
        .collect();
    let printer = tokio::spawn(crate::live::show(rx, display));
    let mut config = CoordinatorConfig::new(plan, workers);
    config.join_timeout = join_timeout;
    config.prepare = prepare;
    config.progress = Some(tx);
    config.metrics = metrics.map(|m| std::sync::Arc::clone(&m.metrics));
    config.search = search;
    config.security = security;
    config.max_workers = max_workers.max(workers);
    let result = fleetload_coordinator::run(listener, config, shutdown).await;
    let _ = printer.await;
    Ok(result?)
}

async fn coordinator(args: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.plan)?;
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let security = server_security(&args.security, args.listen)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // The bound address: with port 0 the system chose it, and workers need it.
    let bound = listener.local_addr().unwrap_or(args.listen);
    println!(
        "coordinator listening on {bound}; waiting {} for {} workers",
        humantime::format_duration(args.join_timeout),
        args.workers
    );
    let prepare = args
        .prepare
        .then(|| prepare_spec(&plan, 4, ml_settings(&plan)));
    let metrics = MetricsServer::start(&args.metrics).await?;
    let report = serve(
        listener,
        plan,
        args.workers,
        args.join_timeout,
        prepare,
        metrics.as_ref(),
        None,
        args.max_workers.unwrap_or(args.workers),
        security,
        shutdown_token(),
    )
    .await;
    let code = report.and_then(|r| {
        finish(
            r,
            Output {
                dir: args.report_dir.as_deref(),
                ..Output::default()
            },
        )
    });
    if let Some(m) = metrics {
        m.close().await;
    }
    code
}

async fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let mut config = WorkerConfig::local(args.name.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            fleetload_worker::client::host_name(),
            std::process::id()
        )
    }));
    if let Some(c) = args.capacity {
        if !c.is_finite() || c <= 0.0 {
            bail!("--capacity {c}: must be a positive number (a relative weight)");
        }
        config.capacity = c;
    }
    if let Some(m) = args.max_sessions {
        config.max_sessions = m;
    }
    config.dial_timeout = args.dial_timeout;
    config.spool_dir = args.spool_dir.clone();
    config.clock_skew_nanos = args.clock_skew_ms.saturating_mul(1_000_000);
    config.security = client_security(&args.channel)?;
    config.allow_targets = args.allow_targets.clone();
    let summary = fleetload_worker::run(&args.coordinator, config, shutdown_token()).await?;
    let ok: u64 = summary.totals.iter().map(|(_, t)| t.ok).sum();
    tracing::info!(run = %summary.run_id, ok, snapshots = summary.snapshots_sent, "worker finished");
    Ok(ExitCode::SUCCESS)
}

/// Start `n` worker processes of this binary that dial `endpoint`.
/// Worker processes started on this host (`run`, `demo`, `find-capacity`).
#[derive(Debug, Clone, Copy)]
struct LocalWorkers {
    count: usize,
    /// Runtime threads of each (the worker's `--threads`).
    threads: u16,
}

fn spawn_workers(
    endpoint: &str,
    fleet: LocalWorkers,
) -> anyhow::Result<Vec<tokio::process::Child>> {
    let threads = fleet.threads.to_string();
    let exe =
        std::env::current_exe().context("cannot find the fleetload executable to start workers")?;
    (0..fleet.count)
        .map(|i| {
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.args([
                "worker",
                "--coordinator",
                endpoint,
                "--name",
                &format!("worker-{i}"),
                "--dial-timeout",
                "15s",
                "--threads",
                &threads,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
            if std::env::var_os("FLEETLOAD_LOG").is_none() {
                cmd.env("FLEETLOAD_LOG", "warn");
            }
            cmd.spawn()
                .with_context(|| format!("cannot start worker process {}", exe.display()))
        })
        .collect()
}

async fn local_fleet(
    plan: Plan,
    fleet: LocalWorkers,
    out: Output<'_>,
    prepare: Option<PrepareSpec>,
    metrics: Option<MetricsServer>,
) -> anyhow::Result<ExitCode> {
    local_fleet_search(plan, fleet, out, prepare, metrics, None).await
}

async fn local_fleet_search(
    plan: Plan,
    fleet: LocalWorkers,
    out: Output<'_>,
    prepare: Option<PrepareSpec>,
    metrics: Option<MetricsServer>,
    search: Option<fleetload_coordinator::search::SearchSpec>,
) -> anyhow::Result<ExitCode> {
    let workers = fleet.count;
    if workers == 0 {
        bail!("--workers must be at least 1");
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on loopback")?;
    let listener_addr = listener.local_addr()?;
    let endpoint = format!("http://{listener_addr}");
    let mut children = spawn_workers(&endpoint, fleet)?;
    println!(
        "coordinator on {endpoint} with {workers} worker processes; target {}",
        plan.target
    );
    let result = serve(
        listener,
        plan,
        workers,
        Duration::from_secs(30),
        prepare,
        metrics.as_ref(),
        search,
        workers,
        server_security(&crate::cli::ServeSecurityArgs::default(), listener_addr)?,
        shutdown_token(),
    )
    .await;
    for child in &mut children {
        match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
            Ok(Ok(status)) if !status.success() => {
                tracing::warn!(%status, "a worker process exited with an error")
            }
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill().await;
            }
        }
    }
    let code = result.and_then(|r| finish(r, out));
    if let Some(m) = metrics {
        m.close().await;
    }
    code
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.plan)?;
    // --prepare: the coordinator creates the table and every worker loads its shard.
    let prepare = args
        .prepare
        .then(|| prepare_spec(&plan, 4, ml_settings(&plan)));
    if let Some(p) = &prepare {
        println!(
            "preparing {} rows of {} through the fleet: the coordinator creates the table, each of the {} workers loads its shard, then the run starts",
            p.rows,
            plan.scenario.name(),
            args.workers
        );
    }
    let metrics = MetricsServer::start(&args.metrics).await?;
    let fleet = LocalWorkers {
        count: args.workers,
        threads: args.threads,
    };
    local_fleet(
        plan,
        fleet,
        Output {
            dir: args.report_dir.as_deref(),
            ..Output::default()
        },
        prepare,
        metrics,
    )
    .await
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir =
        tempfile::tempdir().context("cannot create a temporary directory for the demo database")?;
    let db = dir.path().join("demo.db");
    // SQLite has one writer at a time and the trigger holds it for the model's delay,
    // so the demo's endpoint is quick (2 ms) and the rate moderate: the point is to show
    // the scenario, its model calls and its counters, not to saturate a file database.
    let raw = RawPlan {
        target: Some(format!("sqlite://{}", db.display())),
        scenario: Some("churn".into()),
        rows: Some(20_000),
        sessions: Some(8),
        rate: Some(400.0),
        duration: Some(humantime::format_duration(args.duration).to_string()),
        warmup: Some("1s".into()),
        ml_delay: Some("2ms".into()),
        ml_row_cost: Some("100us".into()),
        ml_capacity: Some(8),
        ..RawPlan::default()
    };
    let plan = Plan::try_from(raw)?;
    println!(
        "fleetload demo: the churn scenario (Aurora ML stand-in: 2 ms per request, 8 in parallel) on embedded SQLite ({}), 2 workers, 400 ops/s for {}",
        db.display(),
        humantime::format_duration(args.duration)
    );
    prepare_plan(&plan, 1, ml_settings(&plan)).await?;
    let fleet = LocalWorkers {
        count: 2,
        threads: 1,
    };
    // The database goes with the temporary directory: the summary must not suggest
    // checking it afterwards.
    let out = Output {
        dir: args.report_dir.as_deref(),
        scratch: true,
    };
    local_fleet(plan, fleet, out, None, None).await
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    use fleetload_db::verify::InsertRange;
    let plan = load_plan(&args.plan)?;
    if plan.scenario.builtin() != Some(fleetload_common::scenario::Scenario::Churn) {
        bail!(
            "verify checks the churn scenario's predictions; the plan's scenario is {}",
            plan.scenario.name()
        );
    }
    let text = std::fs::read_to_string(&args.report)
        .with_context(|| format!("cannot read the report {}", args.report.display()))?;
    let report: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a fleetload report.json", args.report.display()))?;
    // A report of another database would only show its rows as missing here.
    let reported = report["plan"]["target"].as_str().unwrap_or_default();
    let same = fleetload_common::target::Target::parse(reported, None)
        .is_ok_and(|t| t.url() == plan.target.url());
    if reported.is_empty() {
        bail!(
            "{} names no target (plan.target): is it a fleetload report.json?",
            args.report.display()
        );
    }
    if !same {
        bail!(
            "{} is the report of a run on {}, not on {}: verify it against its own target (--target {reported})",
            args.report.display(),
            reported,
            plan.target
        );
    }
    let field = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    let expected = field(&report, "inserted_rows").with_context(|| {
        format!(
            "{} has no inserted_rows: it was written by an older fleetload",
            args.report.display()
        )
    })?;
    let ranges: Vec<InsertRange> = report["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter_map(|w| {
                    Some(InsertRange {
                        first: field(w, "insert_id_base")?,
                        last: field(w, "insert_id_last")?,
                        stride: field(w, "insert_id_stride")?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let found = fleetload_db::verify::verify(&plan.target, plan.connect_timeout, &ranges).await?;
    println!(
        "predictions: {} scored rows checked against the model, {} disagree",
        found.scored_rows,
        found.mismatches.len()
    );
    for m in found.mismatches.iter().take(10) {
        println!(
            "  customer {}: stored {:?}, the model says {:?}",
            m.id, m.stored, m.model
        );
    }
    println!(
        "inserts: the report counted {expected} inserted rows; the run's id ranges hold {}",
        found.inserted_found
    );
    if found.inserted_found != expected {
        let diff = expected.abs_diff(found.inserted_found);
        println!(
            "  {diff} rows {}",
            if found.inserted_found < expected {
                "are missing"
            } else {
                "more than the report counted"
            }
        );
    }
    let ok = found.mismatches.is_empty() && found.inserted_found == expected;
    println!("verify {}", if ok { "PASSED" } else { "FAILED" });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
