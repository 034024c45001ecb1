//! The live display, as a terminal and as a pipe see it.

mod common;
use common::*;
use std::process::Command;

/// Run `fleetload` under `script`, which gives it a pseudo-terminal, and return what
/// the terminal received.
fn on_a_terminal(args: &str, no_color: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&["prepare", "--target", &target, "--rows", "1000"]).assert_ok();
    let cmd = format!(
        "{BIN} run --target {target} --rows 1000 --workers 2 --report-dir {} {args}",
        dir.path().join("r").display()
    );
    let mut c = Command::new("script");
    c.args(["-qfec", &cmd, "/dev/null"]).env("TERM", "xterm");
    if no_color {
        c.env("NO_COLOR", "1");
    } else {
        c.env_remove("NO_COLOR");
    }
    let out = c
        .output()
        .expect("script (util-linux) runs fleetload on a pseudo-terminal");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_terminal_gets_a_status_area_redrawn_in_place_above_the_summary() {
    let screen = on_a_terminal("--rate 100 --duration 3s", false);
    assert!(
        screen.contains("\x1b[3F\x1b[J"),
        "no in-place redraw:\n{screen}"
    );
    assert!(
        screen.contains('█') && screen.contains("/ 3s  measured  workers 2/2"),
        "{screen}"
    );
    assert!(screen.contains("last interval: ok/s"), "{screen}");
    // Interval lines scroll above it; the summary comes after it was cleared.
    assert!(screen.contains("[  3.0s/3s] workers 2/2"), "{screen}");
    let summary = screen.rfind("fleetload run run-").unwrap();
    let last_redraw = screen.rfind("\x1b[J").unwrap();
    assert!(
        last_redraw < summary,
        "the status area was not cleared before the summary"
    );
    assert!(
        !screen[summary..].contains('\x1b'),
        "the summary is plain text"
    );
}

#[test]
fn no_color_or_a_pipe_gets_plain_lines_only() {
    let screen = on_a_terminal("--rate 100 --duration 2s", true);
    assert!(
        !screen.contains('\x1b'),
        "escape sequences with NO_COLOR:\n{screen:?}"
    );
    assert!(
        screen.contains("[  1.0s/2s] workers 2/2") && screen.contains("[  2.0s/2s]"),
        "{screen}"
    );
    // Through a pipe (the test harness's), the same plain lines.
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&["prepare", "--target", &target, "--rows", "1000"]).assert_ok();
    let out = fleetload(&[
        "run",
        "--target",
        &target,
        "--rows",
        "1000",
        "--rate",
        "100",
        "--duration",
        "2s",
        "--report-dir",
        dir.path().join("r").to_str().unwrap(),
    ]);
    out.assert_ok();
    assert!(
        !out.stdout.contains('\x1b') && out.stdout.contains("[  2.0s/2s]"),
        "{}",
        out.stdout
    );
}
