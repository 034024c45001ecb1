//! The `fleetload` command line. All the work happens in the library crates; this file
//! only parses arguments and maps the outcome to an exit status.

mod cli;
mod commands;
mod live;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    commands::init_logging(&args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
