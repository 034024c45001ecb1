//! Reading a report back and writing a run's report files.

use super::*;

impl Report {
    /// Read a report.json back (for `fleetload report show | html | compare`).
    ///
    /// # Errors
    /// The file cannot be read, is not a report, or is of another report format.
    pub fn from_json_file(path: &Path) -> Result<Report, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        match value
            .get("report_format")
            .and_then(serde_json::Value::as_u64)
        {
            Some(f) if f == u64::from(REPORT_FORMAT) => {}
            Some(f) => {
                return Err(format!(
                    "{} is report format {f}; this fleetload reads format {REPORT_FORMAT}",
                    path.display()
                ))
            }
            None => {
                return Err(format!(
                    "{} is not a fleetload report (no report_format)",
                    path.display()
                ))
            }
        }
        serde_json::from_value(value)
            .map_err(|e| format!("{} is not a valid fleetload report: {e}", path.display()))
    }

    /// Write `report.json`, `report.txt`, `report.csv`, `report.hlog` and `report.html`
    /// into `dir` (created if missing).
    ///
    /// # Errors
    /// The directory or a file cannot be written.
    pub fn write_to(&self, dir: &Path) -> Result<(), crate::CoordinatorError> {
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| crate::CoordinatorError::WriteReport { path, source }
        };
        std::fs::create_dir_all(dir).map_err(werr(dir))?;
        let json = dir.join("report.json");
        let body =
            serde_json::to_vec_pretty(self).map_err(|e| crate::CoordinatorError::WriteReport {
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
