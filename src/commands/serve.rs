//! `fleetload coordinator`, the run served with its live display, and the metrics endpoint.

use super::*;

/// The Prometheus endpoint and the live dashboard, while they are served.
pub(super) struct MetricsServer {
    prometheus: Option<Prometheus>,
    ui: Option<(fleetload_coordinator::ui::UiServer, std::sync::Arc<Hub>)>,
    hold: Duration,
    ui_hold: Duration,
}

use fleetload_coordinator::ui::Hub;

struct Prometheus {
    addr: std::net::SocketAddr,
    metrics: std::sync::Arc<fleetload_coordinator::metrics::Metrics>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Serve what `args` asks for (`None`: nothing); the dashboard's controls need
    /// `token` when the fleet has one.
    pub(super) async fn start(
        args: &MetricsArgs,
        token: Option<std::sync::Arc<str>>,
    ) -> anyhow::Result<Option<MetricsServer>> {
        if args.metrics_listen.is_none() && args.ui_listen.is_none() {
            return Ok(None);
        }
        if args.ui_private && token.is_none() {
            bail!("--ui-private needs the fleet's token (FLEETLOAD_TOKEN or --token-file): without one, anyone who reaches the page could view it anyway");
        }
        let prometheus = match args.metrics_listen {
            Some(addr) => Some(Prometheus::start(addr).await?),
            None => None,
        };
        let ui = match args.ui_listen {
            Some(addr) => {
                let hub = Hub::new(token, args.ui_private);
                let server =
                    fleetload_coordinator::ui::UiServer::start(addr, std::sync::Arc::clone(&hub))
                        .await
                        .with_context(|| format!("--ui-listen {addr}: cannot listen there"))?;
                if !server.addr.ip().is_loopback() {
                    eprintln!(
                        "note: the dashboard at http://{}/ is reachable from the network",
                        server.addr
                    );
                }
                println!("dashboard at http://{}/", server.addr);
                Some((server, hub))
            }
            None => None,
        };
        Ok(Some(MetricsServer {
            prometheus,
            ui,
            hold: args.metrics_hold,
            ui_hold: args.ui_hold,
        }))
    }

    /// The counters the Prometheus endpoint serves, when it is served.
    pub(super) fn metrics(
        &self,
    ) -> Option<std::sync::Arc<fleetload_coordinator::metrics::Metrics>> {
        self.prometheus
            .as_ref()
            .map(|p| std::sync::Arc::clone(&p.metrics))
    }

    /// The dashboard's hub, when it is served.
    pub(super) fn hub(&self) -> Option<std::sync::Arc<Hub>> {
        self.ui.as_ref().map(|(_, h)| std::sync::Arc::clone(h))
    }

    /// Keep serving for the holds (the report is written by then; the dashboard links
    /// it), then stop. Ctrl-C ends the hold.
    pub(super) async fn close(self) {
        let prometheus_hold = if self.prometheus.is_some() {
            self.hold
        } else {
            Duration::ZERO
        };
        let ui_hold = if self.ui.is_some() {
            self.ui_hold
        } else {
            Duration::ZERO
        };
        let hold = prometheus_hold.max(ui_hold);
        if !hold.is_zero() {
            if let Some(p) = &self.prometheus {
                println!(
                    "metrics stay at http://{}/metrics for {}",
                    p.addr,
                    humantime::format_duration(prometheus_hold)
                );
            }
            if let Some((u, _)) = &self.ui {
                println!(
                    "the dashboard and the report stay at http://{}/ for {} (Ctrl-C ends it)",
                    u.addr,
                    humantime::format_duration(ui_hold)
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(hold) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        if let Some((server, _)) = self.ui {
            server.close().await;
        }
        if let Some(p) = self.prometheus {
            p.stop.cancel();
            let _ = p.task.await;
        }
    }
}

impl Prometheus {
    async fn start(addr: std::net::SocketAddr) -> anyhow::Result<Prometheus> {
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
        Ok(Prometheus {
            addr,
            metrics,
            stop,
            task,
        })
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
            fleetload_report::count_of(workers, "worker", "workers")
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
    config.run.join_timeout = join_timeout;
    config.run.prepare = prepare;
    config.progress = Some(tx);
    config.metrics = metrics.and_then(MetricsServer::metrics);
    config.ui = metrics.and_then(MetricsServer::hub);
    config.run.search = search;
    config.security = security;
    config.run.max_workers = max_workers.max(workers);
    config.checkpoint = Some(checkpoint.clone());
    let hub = config.ui.clone();
    let (run_id, plan) = (config.run.run_id.clone(), config.run.plan.clone());
    let result = fleetload_coordinator::run(listener, config, shutdown).await;
    if let (Err(e), Some(hub)) = (&result, &hub) {
        hub.failed(&e.to_string());
    }
    let _ = printer.await;
    if let Err(e) = &result {
        write_failed_report(&plan, &run_id, e, &checkpoint.dir(&run_id));
    }
    Ok(result?)
}

/// A run that ended before its start still leaves a report.json (status `failed`, or
/// `interrupted`, with why) where its report would have gone, so CI has an artifact.
fn write_failed_report(
    plan: &Plan,
    run_id: &str,
    error: &fleetload_coordinator::CoordinatorError,
    dir: &Path,
) {
    let mut report = Report::failed_before_start(plan, run_id, error.to_string());
    if matches!(error, fleetload_coordinator::CoordinatorError::Cancelled) {
        report.status = RunStatus::Interrupted;
    }
    match write_report(&report, dir) {
        Ok(()) => println!(
            "report of the failed run written to {}",
            dir.join("report.json").display()
        ),
        Err(e) => tracing::warn!(error = %e, "cannot write the failed run's report"),
    }
}

pub(super) async fn coordinator(args: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.plan)?;
    ready_report_dir(args.report_dir.as_deref())?;
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
    let metrics = MetricsServer::start(&args.metrics, security.token.clone()).await?;
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
    finish_served(report, args.report_dir.as_deref(), metrics).await
}

/// The report of a served run written (into `dir`, or a directory of its own), then
/// the metrics and the dashboard held and closed.
pub(super) async fn finish_served(
    report: anyhow::Result<Report>,
    dir: Option<&Path>,
    metrics: Option<MetricsServer>,
) -> anyhow::Result<ExitCode> {
    let code = report.and_then(|r| {
        finish(
            r,
            Output {
                dir,
                ..Output::default()
            },
        )
    });
    if let Some(m) = metrics {
        m.close().await;
    }
    code
}
