//! Why a report file could not be read or written, naming the file.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not JSON: {source}")]
    NotJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is report format {found}; this fleetload reads format {reads}")]
    OtherFormat {
        path: PathBuf,
        found: u64,
        reads: u32,
    },
    #[error("{path} is not a fleetload report (no report_format)")]
    NotAReport { path: PathBuf },
    #[error("{path} is not a valid fleetload report: {source}")]
    Invalid {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the report to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}
