//! What each subcommand does: build the plan, start the parts, print and write the
//! report, and choose the exit status (0 passed, 1 failed, 130 interrupted). One module
//! per concern; this one dispatches and holds what several share.

use crate::cli::{
    CheckArgs, Cli, Command, CoordinatorArgs, CtlAction, CtlArgs, DemoArgs, FindCapacityArgs,
    MetricsArgs, PlanArgs, PrepareArgs, ReportCommand, RunArgs, VerifyArgs, WorkerArgs,
};
use anyhow::{bail, Context};
use fleetload_common::plan::{Plan, RawPlan};
use fleetload_coordinator::CoordinatorConfig;
use fleetload_db::PrepareSpec;
use fleetload_report::{Report, RunStatus};
use fleetload_worker::WorkerConfig;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod capacity;
mod channel;
mod ctl;
mod data;
mod fleet;
mod output;
mod serve;

use capacity::*;
use channel::*;
use ctl::*;
use data::*;
use fleet::*;
use output::*;
use serve::*;

pub(crate) fn init_logging(cli: &Cli) {
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

pub(crate) async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
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
        Some(path) => {
            if let Ok(text) = std::fs::read_to_string(path) {
                for warning in RawPlan::lint_toml(&text) {
                    eprintln!("warning: {}: {warning}", path.display());
                }
            }
            RawPlan::from_file(path)?
        }
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
