//! `RATE=N`: the drivers at a fixed rate instead of back to back, to split fleetload's
//! cost at a fixed rate into what the driver and tokio cost there and what fleetload adds.
//!
//! This is the least a tokio client can do to send on a schedule: each connection sleeps
//! on its own `timerfd` (precise, as fleetload's pacer, one `timerfd_settime` per query)
//! until its next query is due, and the connections take turns, so the whole process sends
//! `RATE` queries per second at uniform intervals. No pacer task, no queue, no histogram,
//! no timeout: whatever fleetload's worker costs above this, at the same rate and
//! connections, is fleetload's own.
//!
//! `HANDOFF=1` adds the one structural cost of fleetload's design: a pacer task releases
//! every query, on one timer, into a queue that the connections' tasks drain (so a query
//! waits for any free connection, not for one in particular), a task wake more per query.

use super::{cpu, Figures, Res};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

/// A one-shot timer on a `timerfd` in tokio's reactor.
pub struct Timer(AsyncFd<OwnedFd>);

impl Timer {
    pub fn new() -> Res<Self> {
        // SAFETY: timerfd_create has no preconditions; a negative result is an error.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the OwnedFd moves into the AsyncFd, so nothing else can close or
        // replace the descriptor while it is registered (tokio's requirement).
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Timer(fd))
    }

    pub async fn sleep_until(&self, at: Instant) -> Res<()> {
        loop {
            let now = Instant::now();
            if at <= now {
                return Ok(());
            }
            let d = at - now;
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: d.as_secs() as libc::time_t,
                    tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
                },
            };
            // SAFETY: a valid timerfd, a valid spec, no old value asked for.
            let r = unsafe {
                libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut())
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            // Edge-triggered: a stale readiness only sends us round the loop once more.
            self.0.readable().await?.clear_ready();
        }
    }
}

/// Where connection `i` of `conns` starts and how often it sends, at `rate` in all.
#[derive(Clone, Copy)]
pub struct Slot {
    pub start: Instant,
    pub every: Duration,
    pub offset: Duration,
}

impl Slot {
    pub fn of(start: Instant, rate: f64, i: u32, conns: u32) -> Slot {
        let gap = Duration::from_secs_f64(1.0 / rate);
        Slot {
            start,
            every: gap * conns,
            offset: gap * i,
        }
    }

    /// When this connection's `k`-th measured query is due.
    pub fn due(&self, k: u32) -> Instant {
        self.start + self.offset + self.every * k
    }
}

/// Where a connection's queries come from.
pub enum Source {
    /// Its own schedule.
    Own(Slot),
    /// The pacer's queue.
    Shared(Arc<Queue>),
}

/// The queue between the pacer and the connections (`HANDOFF=1`).
#[derive(Default)]
pub struct Queue {
    ids: Mutex<VecDeque<i32>>,
    ready: tokio::sync::Notify,
    done: AtomicBool,
}

impl Queue {
    /// Release `total` ids at `rate`, uniformly from `start`, then close the queue.
    pub async fn pace(self: Arc<Self>, start: Instant, rate: f64, total: u32) -> Res<()> {
        let timer = Timer::new()?;
        let gap = Duration::from_secs_f64(1.0 / rate);
        let mut ids = super::Ids(7);
        for k in 0..total {
            timer.sleep_until(start + gap * k).await?;
            self.ids
                .lock()
                .map_err(|_| "poisoned")?
                .push_back(ids.next());
            self.ready.notify_one();
        }
        self.done.store(true, Ordering::Release);
        self.ready.notify_waiters();
        Ok(())
    }

    /// The next id, or `None` once the pacer is done and the queue empty.
    pub async fn take(&self) -> Option<i32> {
        loop {
            let ready = self.ready.notified();
            if let Some(id) = self.ids.lock().ok()?.pop_front() {
                return Some(id);
            }
            if self.done.load(Ordering::Acquire) {
                return None;
            }
            ready.await;
        }
    }
}

/// CPU from `start` to the end of `runs` (all connections of one driver), per query.
pub async fn measure<Fut>(start: Instant, total: u32, runs: Fut) -> Res<Figures>
where
    Fut: std::future::Future<Output = Res<Vec<usize>>>,
{
    let at_start = async {
        Timer::new()?.sleep_until(start).await?;
        Ok::<_, Box<dyn std::error::Error>>(cpu())
    };
    let (rows, from) = futures_util::future::try_join(runs, at_start).await?;
    let wall = start.elapsed();
    let (u1, s1) = cpu();
    let rows: usize = rows.into_iter().sum();
    if rows != total as usize {
        return Err(format!("{rows} rows for {total} queries: is sbtest1 prepared?").into());
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(total);
    Ok(Figures {
        user: per(u1 - from.0),
        sys: per(s1 - from.1),
        wall: per(wall),
    })
}
