//! Directories fleetload writes into (a worker's spool, a run's report and checkpoints),
//! made ready before any load runs.
//!
//! A spool exists to keep what a worker measured when its coordinator is gone; finding
//! out only then that its directory is missing or read-only loses exactly that data.
//! So every output directory is created (with its parents) and proved writable, by
//! writing and removing a small file in it, when the command starts.

use std::path::{Path, PathBuf};

/// An output directory that cannot be used, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path} cannot be used: {reason}; {fix}")]
pub struct OutputDirError {
    /// Which option or file it is, as the user named it (`--spool-dir`, …).
    pub what: String,
    pub path: PathBuf,
    pub reason: String,
    pub fix: &'static str,
}

const FIX: &str =
    "create it (or its parent) with write permission for this user, or name another directory";

/// Create `dir` (and its parents) when absent and check that this process can write
/// files in it; `what` names the option it came from, for the error.
///
/// # Errors
/// The directory cannot be created, is not a directory, or a file cannot be written in
/// it.
pub fn ensure_writable(dir: &Path, what: &str) -> Result<PathBuf, OutputDirError> {
    let fail = |reason: String| OutputDirError {
        what: what.to_string(),
        path: dir.to_path_buf(),
        reason,
        fix: FIX,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(fail("it exists and is not a directory".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
    let probe = dir.join(format!(".fleetload-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"fleetload checks that it can write here\n")
        .map_err(|e| fail(format!("cannot write a file in it: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_created_with_its_parents() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/spool");
        let made = ensure_writable(&dir, "--spool-dir").unwrap();
        assert!(dir.is_dir());
        assert!(made.is_absolute());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "the probe is removed"
        );
    }

    #[test]
    fn a_file_in_the_way_is_named() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("taken");
        std::fs::write(&file, "x").unwrap();
        let e = ensure_writable(&file, "--report-dir")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--report-dir") && e.contains("not a directory"),
            "{e}"
        );
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_refused() {
        // /proc refuses new directories even to root, who ignores permission bits.
        let e = ensure_writable(Path::new("/proc/self/fleetload-spool"), "--spool-dir")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--spool-dir /proc/self/fleetload-spool") && e.contains("cannot create it"),
            "{e}"
        );
    }
}
