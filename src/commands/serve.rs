//! `fleetload coordinator`, the run served with its live display, and the metrics endpoint.

use super::*;

/// The Prometheus endpoint while it is served.
pub(super) struct MetricsServer {
    addr: std::net::SocketAddr,
    metrics: std::sync::Arc<fleetload_coordinator::metrics::Metrics>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    hold: Duration,
}

impl MetricsServer {
    pub(super) async fn start(args: &MetricsArgs) -> anyhow::Result<Option<MetricsServer>> {
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
    pub(super) async fn close(self) {
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

/// A run to serve: the plan, the fleet it waits for, and what the coordinator does
/// besides (prepare the data, search for capacity, serve metrics).
pub(super) struct Serve<'a> {
    pub(super) plan: Plan,
    pub(super) workers: usize,
    /// Workers admitted in all (late joiners beyond `workers`).
    pub(super) max_workers: usize,
    pub(super) join_timeout: Duration,
    pub(super) prepare: Option<PrepareSpec>,
    pub(super) metrics: Option<&'a MetricsServer>,
    pub(super) search: Option<fleetload_coordinator::search::SearchSpec>,
    pub(super) security: fleetload_coordinator::security::ServerSecurity,
    /// The report directory the run checkpoints into.
    pub(super) checkpoint: fleetload_coordinator::CheckpointTo,
}

/// Serve the run on `listener` with the live display, until its report.
pub(super) async fn serve(
    listener: TcpListener,
    run: Serve<'_>,
    shutdown: CancellationToken,
) -> anyhow::Result<Report> {
    let Serve {
        plan,
        workers,
        max_workers,
        join_timeout,
        prepare,
        metrics,
        search,
        security,
        checkpoint,
    } = run;
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
    config.checkpoint = Some(checkpoint);
    let result = fleetload_coordinator::run(listener, config, shutdown).await;
    let _ = printer.await;
    Ok(result?)
}

pub(super) async fn coordinator(args: CoordinatorArgs) -> anyhow::Result<ExitCode> {
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
    let run = Serve {
        plan,
        workers: args.workers,
        max_workers: args.max_workers.unwrap_or(args.workers),
        join_timeout: args.join_timeout,
        prepare,
        metrics: metrics.as_ref(),
        search: None,
        security,
        checkpoint: checkpoint_to(args.report_dir.as_deref()),
    };
    let report = serve(listener, run, shutdown_token()).await;
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
