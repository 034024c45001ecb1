//! `fleetload find-capacity`: the highest rate that meets the SLOs.

use super::*;

/// `fleetload find-capacity`: one run whose rate the coordinator steers.
pub(super) async fn find_capacity(args: FindCapacityArgs) -> anyhow::Result<ExitCode> {
    check_search_flags(&args)?;
    let plan = search_plan(&args)?;
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
    ready_report_dir(args.report_dir.as_deref())?;
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
            let metrics = MetricsServer::start(&args.metrics, None).await?;
            local_fleet_search(
                plan,
                LocalWorkers {
                    count: args.workers,
                    threads: 1,
                    listen: None,
                },
                Output {
                    dir: args.report_dir.as_deref(),
                    ..Output::default()
                },
                prepare,
                metrics,
                Some(search),
            )
            .await
        }
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            println!("waiting for {} workers on {addr}", args.remote_workers);
            let security = server_security(&args.security, addr)?;
            let metrics = MetricsServer::start(&args.metrics, security.token.clone()).await?;
            let run = Serve {
                plan,
                workers: args.remote_workers,
                max_workers: args.remote_workers,
                join_timeout: Duration::from_secs(60),
                prepare,
                metrics: metrics.as_ref(),
                search: Some(search),
                security,
                checkpoint: checkpoint_to(args.report_dir.as_deref()),
            };
            let report = serve(listener, run, shutdown_token()).await;
            finish_served(report, args.report_dir.as_deref(), metrics).await
        }
    }
}

/// The search's own flags: a first rate, a growth factor and a precision that make sense.
fn check_search_flags(args: &FindCapacityArgs) -> anyhow::Result<()> {
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
    Ok(())
}

/// The plan of a search: the plan's keys, open loop from the first rate, no stages, and
/// 30 minutes at most unless the plan says otherwise.
fn search_plan(args: &FindCapacityArgs) -> anyhow::Result<Plan> {
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
    Ok(Plan::try_from(raw)?)
}
