//! The coordinator's terminal: a status area at the bottom (progress bar, phase,
//! workers, target vs achieved rate, last interval's p50/p99, errors) redrawn in place
//! on a terminal, with each closed interval's line and every log line printed above it
//! so neither tears the other. Without a terminal, or with `NO_COLOR` set (or
//! `TERM=dumb`), it prints one plain line per interval and nothing else.

use fleetload_coordinator::Progress;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where the console writes: the status and interval lines, and the log lines.
pub(crate) struct Sinks {
    pub out: Box<dyn Write + Send>,
    pub err: Box<dyn Write + Send>,
}

struct Inner {
    sinks: Sinks,
    /// Redraw in place (a terminal that takes ANSI sequences).
    fancy: bool,
    /// Lines of status currently on screen.
    shown: usize,
    status: Vec<String>,
}

/// The process's console; logs and the live display share it.
pub(crate) struct Console {
    inner: Mutex<Inner>,
}

static CONSOLE: OnceLock<Console> = OnceLock::new();

/// Whether this process's stdout can take the redrawn status area.
pub(crate) fn stdout_is_fancy() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// The console of this process (stdout and stderr).
pub(crate) fn console() -> &'static Console {
    CONSOLE.get_or_init(|| {
        Console::new(
            stdout_is_fancy(),
            Sinks {
                out: Box::new(std::io::stdout()),
                err: Box::new(std::io::stderr()),
            },
        )
    })
}

impl Console {
    pub(crate) fn new(fancy: bool, sinks: Sinks) -> Self {
        Console {
            inner: Mutex::new(Inner {
                sinks,
                fancy,
                shown: 0,
                status: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn is_fancy(&self) -> bool {
        self.lock().fancy
    }

    /// A line on stdout, above the status area.
    pub(crate) fn line(&self, text: &str) {
        let mut i = self.lock();
        i.erase();
        let _ = writeln!(i.sinks.out, "{text}");
        i.draw();
    }

    /// Log output (whole lines) on stderr, above the status area.
    pub(crate) fn log(&self, bytes: &[u8]) {
        let mut i = self.lock();
        i.erase();
        let _ = i.sinks.err.write_all(bytes);
        let _ = i.sinks.err.flush();
        i.draw();
    }

    /// Replace the status area (terminal only; ignored otherwise).
    pub(crate) fn status(&self, lines: Vec<String>) {
        let mut i = self.lock();
        if !i.fancy {
            return;
        }
        i.erase();
        i.status = lines;
        i.draw();
    }

    /// Remove the status area for good (before the final summary).
    pub(crate) fn clear(&self) {
        let mut i = self.lock();
        i.erase();
        i.status.clear();
    }
}

impl Inner {
    fn erase(&mut self) {
        if self.fancy && self.shown > 0 {
            // Up to the first status line, then clear to the end of the screen.
            let _ = write!(self.sinks.out, "\x1b[{}F\x1b[J", self.shown);
            self.shown = 0;
        }
        let _ = self.sinks.out.flush();
    }

    fn draw(&mut self) {
        if self.fancy {
            for l in &self.status {
                let _ = writeln!(self.sinks.out, "{l}");
            }
            self.shown = self.status.len();
        }
        let _ = self.sinks.out.flush();
    }
}

/// A `tracing` writer whose lines go through the console.
#[derive(Clone, Copy)]
pub(crate) struct LogWriter;

pub(crate) struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            console().log(&self.0);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// What the status area shows.
#[derive(Debug, Clone)]
pub(crate) struct Display {
    pub title: String,
    /// `None` for a capacity search: it ends when it converges.
    pub duration: Option<Duration>,
    pub warmup: Duration,
    pub workers_planned: usize,
    /// The plan's stages: (start, end, description), for "stage 2/3: hold …".
    pub stages: Vec<(Duration, Duration, String)>,
    last: Option<(Progress, Instant)>,
    since: Instant,
}

const BAR: usize = 30;

impl Display {
    pub(crate) fn new(
        title: String,
        duration: Option<Duration>,
        warmup: Duration,
        workers_planned: usize,
    ) -> Self {
        Display {
            title,
            duration,
            warmup,
            workers_planned,
            stages: Vec::new(),
            last: None,
            since: Instant::now(),
        }
    }

    pub(crate) fn update(&mut self, p: Progress) {
        self.last = Some((p, Instant::now()));
    }

    /// The status lines at `now`: the elapsed time runs on between intervals.
    pub(crate) fn lines(&self, now: Instant) -> Vec<String> {
        let Some((p, at)) = &self.last else {
            let waited = now.saturating_duration_since(self.since).as_secs();
            return vec![
                self.title.clone(),
                format!(
                    "starting: {} workers joining, opening sessions, first interval … {waited}s",
                    self.workers_planned
                ),
            ];
        };
        let running = p.elapsed + now.saturating_duration_since(*at);
        let elapsed = self.duration.map_or(running, |d| running.min(d));
        let mut phase = if elapsed < self.warmup {
            "warm-up".to_string()
        } else {
            "measured".to_string()
        };
        if let Some((i, (_, _, what))) = self
            .stages
            .iter()
            .enumerate()
            .find(|(_, (from, to, _))| elapsed >= *from && elapsed < *to)
        {
            phase = format!("{phase}, stage {}/{}: {what}", i + 1, self.stages.len());
        }
        let target = p
            .target_rate
            .map_or(String::new(), |r| format!(" / target {r:.0}"));
        let progress = match self.duration {
            Some(d) => {
                let frac = elapsed.as_secs_f64() / d.as_secs_f64().max(1e-9);
                let filled = ((frac * BAR as f64).round() as usize).min(BAR);
                format!(
                    "[{}{}] {:>5.1}s / {:.0}s",
                    "█".repeat(filled),
                    "░".repeat(BAR - filled),
                    elapsed.as_secs_f64(),
                    d.as_secs_f64()
                )
            }
            None => format!("searching {:>5.1}s", elapsed.as_secs_f64()),
        };
        vec![
            self.title.clone(),
            format!(
                "{progress}  {phase}  workers {}/{}",
                p.workers, self.workers_planned
            ),
            format!(
                "last interval: ok/s {:.0}{}{target}  p50 {:.3}ms  p99 {:.3}ms  errors {}  dropped {}",
                p.ok_per_s, p.roles_text(), p.p50_ms, p.p99_ms, p.errors, p.dropped
            ),
        ]
    }
}

/// Show progress until the channel closes: interval lines always, the redrawn status
/// area on a terminal (ticking four times a second so the bar moves between intervals).
pub(crate) async fn show(mut rx: tokio::sync::mpsc::UnboundedReceiver<Progress>, display: Display) {
    let console = console();
    let display = Arc::new(Mutex::new(display));
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let fancy = console.is_fancy();
    loop {
        tokio::select! {
            p = rx.recv() => match p {
                Some(p) => {
                    console.line(&p.to_string());
                    if let Ok(mut d) = display.lock() {
                        d.update(p);
                    }
                }
                None => break,
            },
            _ = tick.tick(), if fancy => {}
        }
        if fancy {
            let lines = display
                .lock()
                .map(|d| d.lines(Instant::now()))
                .unwrap_or_default();
            console.status(lines);
        }
    }
    console.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn console(fancy: bool) -> (Console, Shared) {
        let both = Shared::default();
        let c = Console::new(
            fancy,
            Sinks {
                out: Box::new(both.clone()),
                err: Box::new(both.clone()),
            },
        );
        (c, both)
    }

    fn text(s: &Shared) -> String {
        String::from_utf8(s.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn on_a_terminal_log_lines_go_above_the_status_which_is_redrawn() {
        let (c, out) = console(true);
        c.status(vec!["bar".into(), "rate".into()]);
        c.log(b"WARN a worker is slow\n");
        c.line("[1.0s] interval line");
        c.status(vec!["bar2".into(), "rate2".into()]);
        c.clear();
        assert_eq!(
            text(&out),
            "bar\nrate\n\x1b[2F\x1b[JWARN a worker is slow\nbar\nrate\n\x1b[2F\x1b[J[1.0s] interval line\nbar\nrate\n\x1b[2F\x1b[Jbar2\nrate2\n\x1b[2F\x1b[J"
        );
    }

    #[test]
    fn without_a_terminal_only_plain_lines_are_written() {
        let (c, out) = console(false);
        c.status(vec!["bar".into()]);
        c.log(b"WARN x\n");
        c.line("[1.0s] interval line");
        c.clear();
        assert_eq!(text(&out), "WARN x\n[1.0s] interval line\n");
    }

    #[test]
    fn the_status_shows_progress_phase_rate_and_percentiles() {
        let mut d = Display::new(
            "fleetload run-1 · sqlite".into(),
            Some(Duration::from_secs(10)),
            Duration::from_secs(2),
            2,
        );
        let t0 = Instant::now();
        assert!(d.lines(t0)[1].starts_with("starting: 2 workers joining"));
        d.update(Progress {
            interval: 4,
            elapsed: Duration::from_secs(5),
            duration: Some(Duration::from_secs(10)),
            warmup: false,
            workers_reporting: 2,
            workers: 2,
            ok_per_s: 398.0,
            target_rate: Some(400.0),
            p50_ms: 0.41,
            p99_ms: 1.8,
            errors: 1,
            dropped: 0,
            by_role: Vec::new(),
        });
        let lines = d.lines(Instant::now());
        assert_eq!(lines[1].matches('█').count(), 15, "{}", lines[1]);
        assert!(
            lines[1].contains("5.0s / 10s  measured  workers 2/2"),
            "{}",
            lines[1]
        );
        assert_eq!(
            lines[2],
            "last interval: ok/s 398 / target 400  p50 0.410ms  p99 1.800ms  errors 1  dropped 0"
        );
    }
}
