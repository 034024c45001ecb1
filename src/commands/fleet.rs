//! A worker, and fleets of worker processes on this host: `run`, `demo`.

use super::*;

pub(super) async fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let mut config = WorkerConfig::local(args.name.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            fleetload_worker::config::host_name(),
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

/// Worker processes started on this host (`run`, `demo`, `find-capacity`).
#[derive(Debug, Clone, Copy)]
pub(super) struct LocalWorkers {
    pub(super) count: usize,
    /// Runtime threads of each (the worker's `--threads`).
    pub(super) threads: u16,
    /// Where the coordinator listens (`None`: a free loopback port).
    pub(super) listen: Option<std::net::SocketAddr>,
}

/// A worker process of this binary, and what it wrote to its standard error.
pub(super) struct LocalWorker {
    name: String,
    child: tokio::process::Child,
    /// Its last lines of standard error, collected as it runs (`None`: passed through,
    /// because the user set FLEETLOAD_LOG to watch it).
    said: Option<tokio::task::JoinHandle<Vec<String>>>,
}

/// Lines of a worker's standard error kept for the end of the run.
const KEPT_LINES: usize = 50;

/// Start the worker processes of this binary that dial `endpoint`. Their standard error
/// is collected, not shown as it comes: the coordinator reports a worker's failure
/// itself, and the same sentence three times (each worker's, a warning, the run's) hides
/// what matters. What a worker said that the run's own output does not is shown at the
/// end ([`reap`]).
pub(super) fn spawn_workers(
    endpoint: &str,
    fleet: LocalWorkers,
) -> anyhow::Result<Vec<LocalWorker>> {
    let threads = fleet.threads.to_string();
    let exe =
        std::env::current_exe().context("cannot find the fleetload executable to start workers")?;
    // A user who asked for the workers' info or debug logs sees them as they come.
    let watching = std::env::var("FLEETLOAD_LOG")
        .is_ok_and(|v| ["info", "debug", "trace"].iter().any(|l| v.contains(l)));
    (0..fleet.count)
        .map(|i| {
            let name = format!("worker-{i}");
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.args([
                "worker",
                "--coordinator",
                endpoint,
                "--name",
                &name,
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
            if !watching {
                cmd.stderr(std::process::Stdio::piped());
            }
            let mut child = cmd
                .spawn()
                .with_context(|| format!("cannot start worker process {}", exe.display()))?;
            let said = child.stderr.take().map(|err| {
                tokio::spawn(async move {
                    use tokio::io::AsyncBufReadExt;
                    let mut lines = tokio::io::BufReader::new(err).lines();
                    let mut kept = std::collections::VecDeque::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if kept.len() == KEPT_LINES {
                            kept.pop_front();
                        }
                        kept.push_back(line);
                    }
                    kept.into_iter().collect()
                })
            });
            Ok(LocalWorker { name, child, said })
        })
        .collect()
}

/// Wait for the worker processes (killing one that outstays 15 s) and show what each
/// said that `already_said` (the run's failures or error) does not.
async fn reap(workers: Vec<LocalWorker>, already_said: &str) {
    for mut w in workers {
        let status = match tokio::time::timeout(Duration::from_secs(15), w.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(_)) => None,
            Err(_) => {
                let _ = w.child.kill().await;
                None
            }
        };
        let lines = match w.said {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        };
        // Said already: the line is part of the run's own output, or holds one of its
        // sentences (a worker refused with the run's error quotes it).
        let news: Vec<&String> = lines
            .iter()
            .filter(|l| {
                let sentence = l.trim().trim_start_matches("error: ");
                !sentence.is_empty()
                    && !already_said.contains(sentence)
                    && !already_said
                        .lines()
                        .any(|said| said.len() >= 20 && sentence.contains(said.trim()))
            })
            .collect();
        for line in &news {
            eprintln!("{}: {line}", w.name);
        }
        if let Some(status) = status.filter(|s| !s.success()) {
            if news.is_empty() && lines.is_empty() {
                tracing::warn!(worker = %w.name, %status, "a worker process exited with an error");
            }
        }
    }
}

pub(super) async fn local_fleet(
    plan: Plan,
    fleet: LocalWorkers,
    out: Output<'_>,
    prepare: Option<PrepareSpec>,
    metrics: Option<MetricsServer>,
) -> anyhow::Result<ExitCode> {
    local_fleet_search(plan, fleet, out, prepare, metrics, None).await
}

pub(super) async fn local_fleet_search(
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
    let listen = fleet
        .listen
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("--listen {listen}: cannot listen there"))?;
    let listener_addr = listener.local_addr()?;
    // The local workers dial loopback even when the coordinator listens on every
    // address.
    let dial = if listener_addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], listener_addr.port()))
    } else {
        listener_addr
    };
    let endpoint = format!("http://{dial}");
    let children = spawn_workers(&endpoint, fleet)?;
    println!(
        "coordinator on {endpoint} with {workers} worker processes; target {}",
        plan.target
    );
    println!(
        "steer it: fleetload ctl --coordinator {dial} status | set-rate N | pause | resume | stop"
    );
    let run = Serve {
        plan,
        workers,
        max_workers: workers,
        join_timeout: Duration::from_secs(30),
        prepare,
        metrics: metrics.as_ref(),
        search,
        security: server_security(&crate::cli::ServeSecurityArgs::default(), listener_addr)?,
        checkpoint: checkpoint_to(out.dir),
    };
    let result = serve(listener, run, shutdown_token()).await;
    let said = match &result {
        Ok(report) => report.failures.join("\n"),
        Err(e) => format!("{e:#}"),
    };
    reap(children, &said).await;
    let code = result.and_then(|r| finish(r, out));
    if let Some(m) = metrics {
        m.close().await;
    }
    code
}

pub(super) async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.plan)?;
    ready_report_dir(args.report_dir.as_deref())?;
    // --prepare: the coordinator creates the table and every worker loads its shard.
    let prepare = args
        .prepare
        .then(|| prepare_spec(&plan, 4, ml_settings(&plan)));
    if let Some(p) = &prepare {
        let what = if plan.scenario.builtin() == Some(fleetload_common::scenario::Scenario::Tpcc) {
            format!("{} warehouses", p.rows)
        } else {
            format!("{} rows", p.rows)
        };
        println!(
            "preparing {what} of {} through the fleet: the coordinator creates the table, each of the {} workers loads its shard, then the run starts",
            plan.scenario.name(),
            args.workers
        );
    }
    let metrics = MetricsServer::start(&args.metrics, None).await?;
    let fleet = LocalWorkers {
        count: args.workers,
        threads: args.threads,
        listen: args.listen,
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

pub(super) async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    ready_report_dir(args.report_dir.as_deref())?;
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
        listen: None,
    };
    // The database goes with the temporary directory: the summary must not suggest
    // checking it afterwards.
    let out = Output {
        dir: args.report_dir.as_deref(),
        scratch: true,
    };
    local_fleet(plan, fleet, out, None, None).await
}
