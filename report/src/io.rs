//! Reading a report back and writing a run's report files.

use super::*;
use crate::ReportError;

impl Report {
    /// Read a report.json back (for `fleetload report show | html | compare`).
    ///
    /// # Errors
    /// The file cannot be read, is not a report, or is of another report format.
    pub fn from_json_file(path: &Path) -> Result<Report, ReportError> {
        let at = || path.to_path_buf();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ReportError::Read { path: at(), source })?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|source| ReportError::NotJson { path: at(), source })?;
        match value
            .get("report_format")
            .and_then(serde_json::Value::as_u64)
        {
            Some(f) if f == u64::from(REPORT_FORMAT) => {}
            Some(found) => {
                return Err(ReportError::OtherFormat {
                    path: at(),
                    found,
                    reads: REPORT_FORMAT,
                })
            }
            None => return Err(ReportError::NotAReport { path: at() }),
        }
        serde_json::from_value(value).map_err(|source| ReportError::Invalid { path: at(), source })
    }

    /// Write `report.json`, `report.txt`, `report.csv`, `report.hlog` and `report.html`
    /// into `dir` (created if missing).
    ///
    /// # Errors
    /// The directory or a file cannot be written.
    pub fn write_to(&self, dir: &Path) -> Result<(), ReportError> {
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ReportError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(werr(dir))?;
        let json = dir.join("report.json");
        let body = serde_json::to_vec_pretty(self).map_err(|e| ReportError::Write {
            path: json.clone(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&json, body).map_err(werr(&json))?;
        for (name, body) in [
            ("report.csv", files::csv(self)),
            ("report.hlog", files::hlog(self, self.start_unix_s)),
            ("report.html", html::render(self)),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, body).map_err(werr(&path))?;
        }
        let txt = dir.join("report.txt");
        std::fs::write(&txt, text::render(self)).map_err(werr(&txt))?;
        Ok(())
    }
}
