//! The `fleetload` command line. All the work happens in the library crates; this file
//! only parses arguments and maps the outcome to an exit status.
// The doc comments of `cli` are clap's `--help` text, written for a terminal
// (`fleetload-report/<run id>/`, `host[:port]`), not rustdoc markup.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod certs;
mod cli;
mod commands;
mod live;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    commands::init_logging(&args);
    let runtime = match runtime_for(&args.command).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::dispatch(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A worker runs on the number of threads it was given (one by default): with one
/// thread, a response and the session it wakes stay on the thread that polled the
/// socket, where a multi-thread runtime pays a futex wake-up and a cross-thread task
/// hand-off for many operations (measured in docs/performance.md). Every other command
/// gets tokio's default multi-thread runtime.
fn runtime_for(command: &cli::Command) -> tokio::runtime::Builder {
    match command {
        cli::Command::Worker(a) if a.threads == 1 => tokio::runtime::Builder::new_current_thread(),
        cli::Command::Worker(a) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(usize::from(a.threads));
            b
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
}
