//! Allocations per operation on the worker's query path: a counting global allocator
//! around `Workload::execute` of `point_select`, on MariaDB, PostgreSQL and SQLite, one
//! session each, after a warm-up (statements prepared and cached). Prints allocations
//! and bytes per operation; the figures are exact counts, not timings, so they do not
//! depend on a quiet machine.
//!
//!   cargo run --release --example alloc_per_op -- [OPS]
//!
//! Targets: FLEETLOAD_TEST_MYSQL and FLEETLOAD_TEST_PG (with FLEETLOAD_TEST_DB_PASSWORD)
//! as `scripts/test` sets them, each with a `point_select` table of 10 000 rows made by
//! `fleetload prepare` (done here).

use fleetload_common::rng::Rng;
use fleetload_common::scenario::{Operation, Scenario};
use fleetload_common::split::Shard;
use fleetload_common::target::Target;
use fleetload_db::connect::ConnectSpec;
use fleetload_db::workloads::builtin::BuiltinWorkload as Workload;
use fleetload_db::workloads::Keys;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

#[allow(unsafe_code)]
// SAFETY: every method forwards to the system allocator with the caller's arguments
// unchanged, so `System`'s guarantees are this allocator's; it only counts besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROWS: u64 = 10_000;

/// `password_env`: the variable holding the server's password, if it needs one.
async fn measure(
    name: &str,
    url: &str,
    password_env: Option<&str>,
    ops: u64,
) -> Result<(), String> {
    let target = Target::parse(url, password_env.map(str::to_string)).map_err(|e| e.to_string())?;
    let spec =
        ConnectSpec::new(target.clone(), Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let prepare = fleetload_db::PrepareSpec {
        target: target.clone(),
        scenario: fleetload_common::scenario_ref::ScenarioRef::Builtin(Scenario::PointSelect),
        rows: ROWS,
        seed: 42,
        sessions: 4,
        connect_timeout: Duration::from_secs(10),
        ml: fleetload_db::ml::MlSettings::default(),
        aurora_endpoint: None,
        batch: 10,
    };
    fleetload_db::prepare(&prepare)
        .await
        .map_err(|e| e.to_string())?;
    let mut session = spec.connect().await.map_err(|e| e.to_string())?;
    let workload = Workload::new(target.driver(), Scenario::PointSelect, 42, 10, false);
    let mut keys = Keys {
        shard: Shard {
            first: 1,
            last: ROWS,
        },
        extra: Vec::new(),
        next_insert: ROWS + 1,
        insert_stride: 1,
    };
    let mut rng = Rng::new(7);
    let counted = || {
        (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        )
    };
    // 1 000 to warm up (statements prepared and cached), then the measured `ops`.
    let mut before = counted();
    for n in [1000, ops] {
        before = counted();
        for _ in 0..n {
            workload
                .execute(&mut session, Operation::PointSelect, &mut keys, &mut rng)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let ((a0, b0), (a1, b1)) = (before, counted());
    println!(
        "{name:<10} {:>10.1} allocations/op {:>10.0} bytes/op",
        (a1 - a0) as f64 / ops as f64,
        (b1 - b0) as f64 / ops as f64
    );
    session.close().await;
    Ok(())
}

fn main() {
    let ops: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let password = std::env::var("FLEETLOAD_TEST_DB_PASSWORD")
        .is_ok()
        .then_some("FLEETLOAD_TEST_DB_PASSWORD");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = format!("sqlite://{}/alloc.db", dir.path().display());
    let mysql = std::env::var("FLEETLOAD_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let pg = std::env::var("FLEETLOAD_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    println!("point_select, one session, {ops} operations after 1 000 to warm up");
    rt.block_on(async {
        for (name, url, pw) in [
            ("mariadb", format!("{mysql}/test"), password),
            ("postgres", format!("{pg}/test"), password),
            ("sqlite", sqlite.clone(), None),
        ] {
            if let Err(e) = measure(name, &url, pw, ops).await {
                println!("{name:<10} skipped: {e}");
            }
        }
    });
}
