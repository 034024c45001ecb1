//! The live dashboard in a real browser: Debian's headless chromium, driven over the
//! DevTools protocol, on a real 2-worker run behind a fleet token.

mod common;

use common::*;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "dash-secret-4411";

fn chromium() -> std::path::PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .expect("no Chromium: install Debian's chromium package (scripts/test does)")
}

fn eval(tab: &Tab, js: &str) -> Value {
    tab.evaluate(js, true)
        .unwrap_or_else(|e| panic!("{js}: {e}"))
        .value
        .unwrap_or(Value::Null)
}

/// Wait (at most `secs`) until `js` is true in the page.
fn wait_for(tab: &Tab, js: &str, secs: u64) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        if eval(tab, js) == Value::Bool(true) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not within {secs} s: {js}");
}

fn frames(tab: &Tab) -> u64 {
    eval(tab, "window.fleet.frames.length")
        .as_u64()
        .unwrap_or(0)
}

/// Offered (planned) and achieved rate of the frames from `from` on.
fn rates_from(tab: &Tab, from: u64) -> Vec<(f64, f64)> {
    let v = eval(
        tab,
        &format!("JSON.stringify(window.fleet.frames.slice({from}).map(f => [f.planned, Object.values(f.interval.operations).reduce((a, o) => a + o.ok_per_s, 0)]))"),
    );
    serde_json::from_str(v.as_str().unwrap()).unwrap()
}

fn click(tab: &Tab, selector: &str) {
    tab.find_element(selector)
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .unwrap();
}

fn message(tab: &Tab) -> String {
    eval(tab, "document.getElementById('message').textContent")
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_dashboard_shows_the_run_live_and_its_controls_need_the_token() {
    let site = Site::new(2000, &["--workers", "2"]);
    let ui = free_port();
    let coordinator = site.coordinator(
        &[
            "--rate",
            "200",
            "--duration",
            "16s",
            "--ui-listen",
            &ui,
            "--ui-hold",
            "30s",
            "--threshold",
            "p99 < 5s",
            "--threshold",
            "ok_per_s > 1000000",
            "--threshold",
            "error_rate < 1%",
        ],
        &[("FLEETLOAD_TOKEN", TOKEN)],
    );
    let workers: Vec<_> = (0..2)
        .map(|i| {
            site.worker_at(
                "http",
                &["--name", &format!("w{i}")],
                &[("FLEETLOAD_TOKEN", TOKEN)],
            )
        })
        .collect();

    let browser = Browser::new(
        LaunchOptions::default_builder()
            .path(Some(chromium()))
            .sandbox(false)
            .window_size(Some((1300, 1800)))
            .idle_browser_timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
    )
    .expect("start chromium");
    let tab = browser.new_tab().unwrap();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&errors);
    tab.enable_log().unwrap().enable_runtime().unwrap();
    tab.add_event_listener(Arc::new(move |event: &Event| match event {
        Event::LogEntryAdded(e) => {
            let level = format!("{:?}", e.params.entry.level);
            if level.contains("Error") {
                seen.lock().unwrap().push(e.params.entry.text.clone());
            }
        }
        Event::RuntimeExceptionThrown(e) => {
            seen.lock()
                .unwrap()
                .push(format!("{:?}", e.params.exception_details.text));
        }
        _ => {}
    }))
    .unwrap();
    tab.navigate_to(&format!("http://{ui}/"))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    // Every confirmation is accepted, as a person clicking OK would.
    eval(&tab, "window.confirm = () => true; true");

    // The charts gain points while the run goes on.
    wait_for(&tab, "window.fleet.frames.length >= 3", 40);
    let points = |tab: &Tab| {
        eval(
            tab,
            "Number(document.querySelector('#c-throughput polyline.series').dataset.points)",
        )
        .as_f64()
        .unwrap_or(0.0)
    };
    let before = points(&tab);
    wait_for(&tab, "window.fleet.frames.length >= 5", 20);
    assert!(points(&tab) > before, "the throughput chart grew");
    // What the page shows of the closed intervals, to hold against report.json.
    let shown: Vec<(u64, String, u64, f64, f64)> = serde_json::from_str(
        eval(
            &tab,
            "JSON.stringify([...document.querySelectorAll('#intervals tbody tr')].map(r => [Number(r.dataset.interval), r.dataset.op, Number(r.querySelector('.count').textContent), Number(r.querySelector('.p50').textContent), Number(r.querySelector('.p99').textContent)]))",
        )
        .as_str()
        .unwrap(),
    )
    .unwrap();
    assert!(shown.len() >= 4, "{shown:?}");
    // The thresholds' verdicts so far, and the instance that served the interval.
    let verdicts = eval(
        &tab,
        "[...document.querySelectorAll('#thresholds tbody tr')].map(r => r.textContent).join(' | ')",
    );
    let verdicts = verdicts.as_str().unwrap();
    assert!(
        verdicts.contains("p99 < 5s")
            && verdicts.contains("passing")
            && verdicts.contains("ok_per_s > 1000000")
            && verdicts.contains("FAILING"),
        "{verdicts}"
    );
    // Measured values with their units, as report.txt writes them.
    assert!(
        verdicts.contains("error_rate < 1%")
            && verdicts.contains("0.000%")
            && !verdicts.contains("undefined"),
        "{verdicts}"
    );
    // Workers by slot: slot i is w{i} (names in natural order), running while the run
    // runs, and the per-worker chart names the same worker for the same slot.
    let table: Vec<(u64, String, String)> = serde_json::from_str(
        eval(
            &tab,
            "JSON.stringify([...document.querySelectorAll('#workers tbody tr')].map(r => [Number(r.cells[0].textContent), r.cells[1].textContent, r.cells[3].textContent]))",
        )
        .as_str()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        table,
        vec![
            (0, "w0".to_string(), "running".to_string()),
            (1, "w1".to_string(), "running".to_string())
        ]
    );
    let legend = eval(
        &tab,
        "[...document.querySelectorAll('#l-workers span')].map(s => s.textContent).sort().join(',')",
    );
    assert_eq!(legend.as_str(), Some("w0,w1"));
    // Round ticks: each axis steps by 1, 2 or 5 times a power of ten.
    let ticks: Vec<String> = serde_json::from_str(
        eval(
            &tab,
            "JSON.stringify([...document.querySelectorAll('#c-throughput .ytick')].map(t => t.textContent))",
        )
        .as_str()
        .unwrap(),
    )
    .unwrap();
    let values: Vec<f64> = ticks.iter().map(|t| t.parse().unwrap()).collect();
    assert!(values.len() >= 3, "{ticks:?}");
    let step = values[1] - values[0];
    let mantissa = step / 10f64.powf(step.log10().floor());
    assert!(
        [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6)
            && values
                .windows(2)
                .all(|w| ((w[1] - w[0]) - step).abs() < 1e-6),
        "{ticks:?}"
    );
    let instance_rows = eval(
        &tab,
        "document.querySelectorAll('#instances tbody tr').length",
    );

    // Without the token the controls are refused and the load goes on.
    click(&tab, "#pause");
    wait_for(
        &tab,
        "document.getElementById('message').textContent.length > 0",
        10,
    );
    assert!(message(&tab).contains("token"), "{}", message(&tab));
    // With it, pause brings the offered rate to 0 within 2 intervals, resume back.
    eval(
        &tab,
        &format!("document.getElementById('token').value = '{TOKEN}'; true"),
    );
    let at = frames(&tab);
    click(&tab, "#pause");
    wait_for(
        &tab,
        "document.getElementById('message').textContent.includes('paused')",
        10,
    );
    wait_for(
        &tab,
        &format!("window.fleet.frames.length >= {}", at + 3),
        20,
    );
    let paused = rates_from(&tab, at + 2);
    // Offered 0; an operation due at the boundary may still complete in it.
    assert!(
        paused[0].0 == 0.0 && paused[0].1 <= 5.0,
        "offered rate 0 within 2 intervals of the pause: {paused:?}"
    );
    let at = frames(&tab);
    click(&tab, "#resume");
    wait_for(
        &tab,
        &format!("window.fleet.frames.length >= {}", at + 3),
        20,
    );
    let resumed = rates_from(&tab, at + 2);
    assert!(
        resumed[0].1 > 150.0,
        "back at the rate within 2 intervals: {resumed:?}"
    );

    // The end: the page says so and links the report the coordinator serves.
    wait_for(&tab, "window.fleet.ended !== null", 40);
    // The throughput threshold fails the run, as the page said all along.
    assert_eq!(eval(&tab, "window.fleet.ended.status"), "failed");
    assert_eq!(
        eval(
            &tab,
            "fetch(document.getElementById('report-link').href).then(r => r.status)"
        ),
        200
    );
    let png = tab
        .capture_screenshot(
            headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption::Png,
            None,
            None,
            true,
        )
        .unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, png).unwrap();
    eprintln!("screenshot: {}", shot.display());
    // The one refused control (no token) is logged by the browser as a failed load;
    // nothing else may be.
    let errors = errors.lock().unwrap().clone();
    let (refused, other): (Vec<_>, Vec<_>) = errors
        .iter()
        .partition(|e| e.contains("401 (Unauthorized)"));
    assert!(other.is_empty(), "console errors: {other:?}");
    assert_eq!(refused.len(), 1, "{errors:?}");

    // The numbers shown are report.json's.
    let r = site.report();
    assert!(
        r["failures"].to_string().contains("ok_per_s > 1000000"),
        "{}",
        r["failures"]
    );
    assert_eq!(
        instance_rows.as_u64().unwrap(),
        r["instances"].as_array().map_or(0, |a| a.len() as u64),
        "the page lists the instances the report does"
    );
    for (k, op, count, p50, p99) in &shown {
        let i = &r["intervals"][*k as usize]["operations"][op];
        assert_eq!(u(&i["count"]), *count, "interval {k} {op}");
        for (key, v) in [("p50_ms", p50), ("p99_ms", p99)] {
            assert!(
                (f(&i["response_time"][key]) - v).abs() < 0.0006,
                "interval {k} {op} {key}: page {v}, report {}",
                i["response_time"][key]
            );
        }
    }
    drop(tab);
    drop(browser);
    let mut coordinator = coordinator;
    let _ = coordinator.kill();
    let _ = coordinator.wait();
    for w in workers {
        let _ = output(w);
    }
}

#[test]
fn a_private_dashboard_streams_nothing_without_the_token() {
    let site = Site::new(2000, &["--workers", "1"]);
    let ui = free_port();
    let mut coordinator = site.coordinator(
        &[
            "--rate",
            "50",
            "--duration",
            "3s",
            "--ui-listen",
            &ui,
            "--ui-private",
            "--ui-hold",
            "0s",
        ],
        &[("FLEETLOAD_TOKEN", TOKEN)],
    );
    wait_listening(&ui);
    let get = |path: &str| -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&ui).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let refused = get("/events");
    assert!(
        refused.starts_with("HTTP/1.1 401") && refused.contains("token"),
        "{refused}"
    );
    let allowed = get(&format!("/events?token={TOKEN}"));
    assert!(
        allowed.starts_with("HTTP/1.1 200") && allowed.contains("event: hello"),
        "{allowed}"
    );
    let _ = coordinator.kill();
    let _ = coordinator.wait();
}
