//! Where reports go (a directory per run, a `latest` link) and `fleetload report`.

use super::*;

pub(super) fn report(command: ReportCommand) -> anyhow::Result<ExitCode> {
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

/// Where a run's report goes: the directory asked for, or one of its own under
/// `fleetload-report/`, so no run overwrites another's.
pub(super) const REPORTS: &str = "fleetload-report";

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
