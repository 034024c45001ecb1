//! Client CPU per query of the database drivers fleetload could run its hot path on,
//! side by side in one process and one run: sqlx (what fleetload uses) against
//! `mysql_async` on MariaDB/MySQL and against `tokio-postgres` on PostgreSQL.
//!
//! sqlx 0.9 is measured beside 0.8 (the version the workspace uses) to see what an
//! upgrade would buy.
//!
//! No TLS on either engine (the PostgreSQL URL given to sqlx says `sslmode=disable`, as
//! tokio-postgres runs with `NoTls`).
//!
//! One connection, one prepared point select (`SELECT c FROM sbtest1 WHERE id = ?`, the
//! table `fleetload prepare --scenario point_select` makes), queries back to back on a
//! current-thread runtime, rows counted as they arrive. CPU is the process's
//! `getrusage` user and system time over the measured queries; the server's work is in
//! its own process and not counted. Rounds alternate the drivers so that a noisy machine
//! moves them alike; compare the ratios of one run.
//!
//! `CONNS=8` runs 8 connections of each driver at once on the one thread (n / 8 queries
//! each), as fleetload's sessions share a runtime thread.
//!
//! `RATE=4000` sends at that fixed rate instead, at uniform intervals, the connections
//! taking turns (sqlx only; see `paced.rs`); with `HANDOFF=1` through a pacer's queue.
//!
//! ```sh
//! cd bench/drivers && cargo run --release -- mysql://root@127.0.0.1:3306/test \
//!     'host=127.0.0.1 user=postgres dbname=test' 20000 3
//! ```

mod paced;

use futures_util::TryStreamExt;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const MYSQL_SQL: &str = "SELECT c FROM sbtest1 WHERE id = ?";
const PG_SQL: &str = "SELECT c FROM sbtest1 WHERE id = $1";

fn cpu() -> (Duration, Duration) {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let u = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr());
        u.assume_init()
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (tv(u.ru_utime), tv(u.ru_stime))
}

/// Ids spread over the table, the same sequence for every driver.
pub(crate) struct Ids(pub(crate) u64);
impl Ids {
    pub(crate) fn next(&mut self) -> i32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % 100_000) as i32 + 1
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Figures {
    user: f64,
    sys: f64,
    wall: f64,
}

/// Warm up, then time `n` runs of `$one` (an expression using `$id`, giving the rows).
macro_rules! measure {
    ($n:expr, |$id:ident| $one:expr) => {{
        let n: u32 = $n;
        let mut ids = Ids(7);
        for _ in 0..1000 {
            let $id = ids.next();
            $one;
        }
        let (u0, s0) = cpu();
        let t0 = Instant::now();
        let mut rows = 0usize;
        for _ in 0..n {
            let $id = ids.next();
            rows += $one;
        }
        let wall = t0.elapsed();
        let (u1, s1) = cpu();
        if rows != n as usize {
            return Err(format!(
                "{rows} rows for {n} queries: is sbtest1 prepared with 100 000 rows?"
            )
            .into());
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
        Figures {
            user: per(u1 - u0),
            sys: per(s1 - s0),
            wall: per(wall),
        }
    }};
}

/// The drivers, in the order they run in each round (`ONLY` takes one of these names).
const DRIVERS: [&str; 6] = [
    "sqlx 0.8 mysql",
    "mysql_async",
    "sqlx 0.9 mysql",
    "sqlx 0.8 postgres",
    "tokio-postgres",
    "sqlx 0.9 postgres",
];

/// Ratios printed: (driver, against which).
const PAIRS: [(usize, usize); 4] = [(1, 0), (2, 0), (4, 3), (5, 3)];

/// `ONLY=<driver>` runs one driver (to trace it alone); the others then print nothing.
fn only(name: &str) -> bool {
    std::env::var("ONLY").map_or(true, |o| o == name)
}

/// A driver's run through sqlx (either version): connect, then count the rows of each
/// query as they stream, as fleetload's `Session::fetch` does.
macro_rules! sqlx_driver {
    ($name:ident, $sqlx:ident, $conn:ident, $sql:expr) => {
        async fn $name(url: &str, n: u32) -> Res<Figures> {
            use $sqlx::Connection;
            let mut c = $sqlx::$conn::connect(url).await?;
            Ok(measure!(n, |id| {
                let mut s = $sqlx::query($sql).bind(i64::from(id)).fetch(&mut c);
                let mut k = 0;
                while s.try_next().await?.is_some() {
                    k += 1;
                }
                k
            }))
        }
    };
}

/// The same driver at a fixed rate: connect, warm up back to back, then query on its
/// own schedule or as the pacer's queue gives out ids (`paced.rs`).
macro_rules! sqlx_paced {
    ($name:ident, $sqlx:ident, $conn:ident, $sql:expr) => {
        async fn $name(url: String, n: u32, source: paced::Source) -> Res<usize> {
            use $sqlx::Connection;
            let mut c = $sqlx::$conn::connect(&url).await?;
            let mut rows = 0;
            macro_rules! query {
                ($id:expr) => {{
                    let mut s = $sqlx::query($sql).bind(i64::from($id)).fetch(&mut c);
                    let mut k = 0;
                    while s.try_next().await?.is_some() {
                        k += 1;
                    }
                    k
                }};
            }
            let mut ids = Ids(7);
            for _ in 0..1000 {
                query!(ids.next());
            }
            match source {
                paced::Source::Own(slot) => {
                    let timer = paced::Timer::new()?;
                    for k in 0..n {
                        timer.sleep_until(slot.due(k)).await?;
                        rows += query!(ids.next());
                    }
                }
                paced::Source::Shared(q) => {
                    while let Some(id) = q.take().await {
                        rows += query!(id);
                    }
                }
            }
            Ok(rows)
        }
    };
}

sqlx_paced!(sqlx_mysql_paced, sqlx, MySqlConnection, MYSQL_SQL);
sqlx_paced!(sqlx09_mysql_paced, sqlx09, MySqlConnection, MYSQL_SQL);
sqlx_paced!(sqlx_pg_paced, sqlx, PgConnection, PG_SQL);
sqlx_paced!(sqlx09_pg_paced, sqlx09, PgConnection, PG_SQL);

sqlx_driver!(sqlx_mysql, sqlx, MySqlConnection, MYSQL_SQL);
sqlx_driver!(sqlx09_mysql, sqlx09, MySqlConnection, MYSQL_SQL);
sqlx_driver!(sqlx_pg, sqlx, PgConnection, PG_SQL);
sqlx_driver!(sqlx09_pg, sqlx09, PgConnection, PG_SQL);

async fn mysql_async_(url: &str, n: u32) -> Res<Figures> {
    use mysql_async::prelude::Queryable;
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(url)?).await?;
    let stmt = c.prep(MYSQL_SQL).await?;
    Ok(measure!(n, |id| {
        let mut k = 0;
        c.exec_iter(&stmt, (id,))
            .await?
            .for_each(|_| k += 1)
            .await?;
        k
    }))
}

async fn tokio_pg(conninfo: &str, n: u32) -> Res<Figures> {
    let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(conn);
    let f = tokio_pg_queries(&client, n).await;
    drop(client);
    let _ = driver.await;
    f
}

async fn tokio_pg_queries(client: &tokio_postgres::Client, n: u32) -> Res<Figures> {
    let stmt = client.prepare(PG_SQL).await?;
    Ok(measure!(n, |id| {
        let s = client.query_raw(&stmt, [id]).await?;
        futures_util::pin_mut!(s);
        let mut k = 0;
        while s.try_next().await?.is_some() {
            k += 1;
        }
        k
    }))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let mysql = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "mysql://root@127.0.0.1:3306/test".into());
    let pg = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "host=127.0.0.1 user=postgres dbname=test".into());
    let n: u32 = args.get(3).map_or(Ok(20_000), |s| s.parse())?;
    let rounds: u32 = args.get(4).map_or(Ok(3), |s| s.parse())?;
    let conns: u32 = std::env::var("CONNS").map_or(Ok(1), |s| s.parse())?;
    let rate: Option<f64> = std::env::var("RATE").ok().map(|s| s.parse()).transpose()?;
    let pg_url = pg_url(&pg);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mode = rate.map_or("closed loop".to_string(), |r| {
        format!("{r} per second, uniform")
    });
    println!("{n} point selects per driver and round, {conns} connection(s) at once, {mode}; client CPU µs per query");
    println!(
        "{:<6} {:<18} {:>8} {:>8} {:>8} {:>9}",
        "round", "driver", "user", "sys", "total", "wall µs"
    );
    let mut ratios: [Vec<f64>; 8] = Default::default();
    for r in 1..=rounds {
        let mut figs: [Option<Figures>; 6] = [None; 6];
        for (k, name) in DRIVERS.iter().enumerate() {
            if !only(name) {
                continue;
            }
            // CONNS connections at once, each running n / CONNS queries (after its
            // 1 000 to warm up): CPU and wall per query of the whole process.
            let run = |k: usize, n: u32| {
                let (mysql, pg, pg_url) = (&mysql, &pg, &pg_url);
                async move {
                    match k {
                        0 => sqlx_mysql(mysql, n).await,
                        1 => mysql_async_(mysql, n).await,
                        2 => sqlx09_mysql(mysql, n).await,
                        3 => sqlx_pg(pg_url, n).await,
                        4 => tokio_pg(pg, n).await,
                        _ => sqlx09_pg(pg_url, n).await,
                    }
                }
            };
            let f = if let Some(rate) = rate {
                // sqlx only: the others' query loops are not written for a schedule.
                if k == 1 || k == 4 {
                    continue;
                }
                // Every connection connected and warmed up before the first is due.
                let start = Instant::now() + Duration::from_secs(2);
                let each = n / conns;
                let queue = std::env::var("HANDOFF")
                    .is_ok_and(|v| v == "1")
                    .then(|| std::sync::Arc::new(paced::Queue::default()));
                // Each connection (and the pacer) a task of its own, as in fleetload.
                let runs = async {
                    let mut tasks = Vec::new();
                    for i in 0..conns {
                        let source = match &queue {
                            Some(q) => paced::Source::Shared(q.clone()),
                            None => paced::Source::Own(paced::Slot::of(start, rate, i, conns)),
                        };
                        let (mysql, pg_url) = (mysql.clone(), pg_url.clone());
                        tasks.push(tokio::spawn(async move {
                            match k {
                                0 => sqlx_mysql_paced(mysql, each, source).await,
                                2 => sqlx09_mysql_paced(mysql, each, source).await,
                                3 => sqlx_pg_paced(pg_url, each, source).await,
                                _ => sqlx09_pg_paced(pg_url, each, source).await,
                            }
                            .map_err(|e| e.to_string())
                        }));
                    }
                    if let Some(q) = &queue {
                        let pacer = q.clone().pace(start, rate, each * conns);
                        tasks.push(tokio::spawn(async move {
                            pacer.await.map(|()| 0).map_err(|e| e.to_string())
                        }));
                    }
                    let mut rows = Vec::new();
                    for t in tasks {
                        rows.push(t.await?.map_err(|e| e.to_string())?);
                    }
                    Ok(rows)
                };
                rt.block_on(paced::measure(start, each * conns, runs))?
            } else if conns == 1 {
                rt.block_on(run(k, n))?
            } else {
                let (u0, s0) = cpu();
                let t0 = Instant::now();
                let each = n / conns;
                rt.block_on(futures_util::future::try_join_all(
                    (0..conns).map(|_| run(k, each)),
                ))?;
                let wall = t0.elapsed();
                let (u1, s1) = cpu();
                let total = f64::from(conns * (each + 1000));
                let per = |d: Duration| d.as_secs_f64() * 1e6 / total;
                Figures {
                    user: per(u1 - u0),
                    sys: per(s1 - s0),
                    wall: per(wall),
                }
            };
            println!(
                "{r:<6} {name:<18} {:>8.2} {:>8.2} {:>8.2} {:>9.2}",
                f.user,
                f.sys,
                f.user + f.sys,
                f.wall
            );
            figs[k] = Some(f);
        }
        for (k, (alt, base)) in PAIRS.into_iter().enumerate() {
            if let (Some(a), Some(b)) = (figs[alt], figs[base]) {
                ratios[2 * k].push((a.user + a.sys) / (b.user + b.sys));
                ratios[2 * k + 1].push(a.user / b.user);
            }
        }
    }
    for (k, (alt, base)) in PAIRS.into_iter().enumerate() {
        let [total, user] = [2 * k, 2 * k + 1].map(|i| {
            let v = &mut ratios[i];
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        });
        if let (Some(total), Some(user)) = (total, user) {
            println!(
                "{:<36} total CPU {total:.2}×, user CPU {user:.2}× (medians)",
                format!("{} / {}", DRIVERS[alt], DRIVERS[base])
            );
        }
    }
    Ok(())
}

/// `host=H user=U dbname=D` as the URL sqlx takes, without TLS as tokio-postgres runs
/// here (sqlx would otherwise prefer TLS when the server offers it).
fn pg_url(conninfo: &str) -> String {
    let get = |k: &str| {
        conninfo
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_string()
    };
    format!(
        "postgres://{}@{}:5432/{}?sslmode=disable",
        get("user"),
        get("host"),
        get("dbname")
    )
}
