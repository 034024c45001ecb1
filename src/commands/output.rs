//! Where reports go (a directory per run, a `latest` link) and `fleetload report`.

use super::*;
use std::path::PathBuf;

pub(super) fn report(command: ReportCommand) -> anyhow::Result<ExitCode> {
    let read = |p: &Path| Report::from_json_file(p).map_err(anyhow::Error::msg);
    match command {
        ReportCommand::Show { report } => {
            print!("{}", fleetload_report::text::render(&read(&report)?));
        }
        ReportCommand::Html { report, out } => {
            let r = read(&report)?;
            let out = out.unwrap_or_else(|| report.with_file_name("report.html"));
            std::fs::write(&out, fleetload_report::html::render(&r))
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("wrote {}", out.display());
        }
        ReportCommand::Compare {
            base,
            new,
            fail_on,
            noise,
            format,
        } => {
            let noise = noise
                .parse::<fleetload_report::compare::Noise>()
                .map_err(anyhow::Error::msg)?;
            return compare(&read(&base)?, &read(&new)?, &fail_on, format, noise);
        }
        ReportCommand::Recover {
            dir,
            mut spools,
            spool_dir,
            out,
        } => {
            if let Some(d) = spool_dir {
                spools.extend(spools_of_run(&dir, &d)?);
            }
            return recover(&dir, &spools, out);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `report compare`: exit 1 when a gate fails.
fn compare(
    base: &Report,
    new: &Report,
    fail_on: &[String],
    format: crate::cli::CompareFormat,
    noise: fleetload_report::compare::Noise,
) -> anyhow::Result<ExitCode> {
    use fleetload_report::compare::{render_with, Format, Gate};
    let gates = fail_on
        .iter()
        .map(|g| g.parse::<Gate>())
        .collect::<Result<Vec<_>, _>>()?;
    let format = match format {
        crate::cli::CompareFormat::Text => Format::Text,
        crate::cli::CompareFormat::Markdown => Format::Markdown,
        crate::cli::CompareFormat::Json => Format::Json,
    };
    let (text, passed) = render_with(base, new, &gates, format, noise)?;
    print!("{text}");
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// This run's spools in `spool_dir`, by the run id of the checkpoint in `dir`.
fn spools_of_run(dir: &Path, spool_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let run = fleetload_report::checkpoint::Checkpoint::read(dir)?.run_id;
    let prefix = format!("fleetload-unsent-{run}-w");
    let mut found: Vec<PathBuf> = std::fs::read_dir(spool_dir)
        .with_context(|| format!("--spool-dir {}: cannot list it", spool_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".jsonl"))
        })
        .collect();
    found.sort();
    println!(
        "{} spool{} of run {run} in {}",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        spool_dir.display()
    );
    Ok(found)
}

/// `report recover`: the report rebuilt and written; exit 1 while a worker's data is
/// still missing.
fn recover(dir: &Path, spools: &[PathBuf], out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (report, recovery) = fleetload_report::recover::recover(dir, spools)?;
    print!("{}", fleetload_report::text::render(&report));
    let out = out.unwrap_or_else(|| {
        if dir.is_dir() {
            dir.to_path_buf()
        } else {
            dir.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        }
    });
    report.write_to(&out)?;
    println!(
        "recovered report written to {}",
        out.join("report.json").display()
    );
    Ok(if recovery.missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Where a run's report goes: the directory asked for, or one of its own under
/// `fleetload-report/`, so no run overwrites another's.
pub(super) const REPORTS: &str = "fleetload-report";

/// Make the report directory ready before anything runs: created and writable (a report
/// that cannot be written at the end would lose the run), and never one that already
/// holds another run's report, which this run would overwrite.
pub(super) fn ready_report_dir(dir: Option<&Path>) -> anyhow::Result<()> {
    let Some(dir) = dir else {
        fleetload_common::outdir::ensure_writable(Path::new(REPORTS), "the report directory")?;
        return Ok(());
    };
    for name in ["report.json", "report.partial.json"] {
        let existing = dir.join(name);
        if existing.exists() {
            let run = std::fs::read(&existing)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v.get("run_id").and_then(|r| r.as_str()).map(str::to_string))
                .map_or_else(String::new, |r| format!(" (run {r})"));
            bail!(
                "--report-dir {}: it already holds a run's report{run} in {}, which this run would overwrite; name a new directory, or leave --report-dir out to write into {REPORTS}/<run id>/ (a directory per run)",
                dir.display(),
                existing.display()
            );
        }
    }
    fleetload_common::outdir::ensure_writable(dir, "--report-dir")?;
    Ok(())
}

/// Where a run's checkpoints go: the report directory it will be written to.
pub(super) fn checkpoint_to(dir: Option<&Path>) -> fleetload_coordinator::CheckpointTo {
    match dir {
        Some(d) => fleetload_coordinator::CheckpointTo::Dir(d.to_path_buf()),
        None => fleetload_coordinator::CheckpointTo::PerRun(PathBuf::from(REPORTS)),
    }
}

/// Where a report goes, and what the summary should know about the target.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Output<'a> {
    /// `None`: a directory of its own under `fleetload-report/`.
    pub(super) dir: Option<&'a Path>,
    /// The target was a scratch database that goes away with the command (the demo).
    pub(super) scratch: bool,
}

pub(super) fn finish(mut report: Report, out: Output<'_>) -> anyhow::Result<ExitCode> {
    report.scratch_target = out.scratch;
    let report = &report;
    let dir = out.dir;
    println!();
    print!("{}", fleetload_report::text::render(report));
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => Path::new(REPORTS).join(&report.run_id),
    };
    write_report(report, &dir)?;
    println!("report written to {}", dir.join("report.json").display());
    Ok(match report.status {
        RunStatus::Passed => ExitCode::SUCCESS,
        RunStatus::Failed => ExitCode::FAILURE,
        RunStatus::Interrupted => ExitCode::from(130),
        RunStatus::Recovered => ExitCode::SUCCESS,
    })
}

/// Write every report file into `dir`; a directory of the default layout becomes
/// `fleetload-report/latest`.
pub(super) fn write_report(report: &Report, dir: &Path) -> anyhow::Result<()> {
    report.write_to(dir)?;
    if dir.parent() == Some(Path::new(REPORTS)) {
        point_latest_at(dir);
    }
    Ok(())
}

/// `fleetload-report/latest` → the newest run's directory (a relative link, so the tree
/// can be moved). A failure is only a warning: the report itself is written.
pub(super) fn point_latest_at(dir: &Path) {
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
