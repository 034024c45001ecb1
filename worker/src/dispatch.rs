//! The queue between the pacer and the sessions: which free session takes the next
//! operation.
//!
//! Any free session may take any operation, so an operation waits only when every
//! session is busy (what keeps the open loop honest). Which free session takes it does
//! not change that, but it changes the cost: handing each operation to the session that
//! has waited longest walks every session in turn, and at a moderate rate each
//! operation then finds its session's connection, buffers and task cold in the CPU's
//! caches. Measured at 4 000 ops/s on one runtime thread: 8 sessions taking turns cost
//! 38–50 µs of worker CPU per operation, one session 26–34 µs; warm-first took 11 % off
//! on PostgreSQL and was within noise on MariaDB (docs/performance.md).
//! [`Order::Warm`] hands an operation to the session that became free last, so a lightly
//! loaded worker keeps running on its few warm sessions, except that a session which has
//! waited [`STALE`] takes the next operation: every session still runs at least every
//! 100 ms when the rate allows, so each connection stays exercised (sessions are
//! attributed to instances per interval, every session meets a failover, connections
//! reach their age limit), and at rates below ten operations per second per session
//! every waiter is stale and the sessions take turns as before. [`Order::Turns`] always
//! takes turns: the sessions of a reader endpoint land on replicas by the endpoint's
//! DNS, and taking turns is what spreads the reads over them.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How long a free session may wait while warmer ones take the operations.
pub(crate) const STALE: Duration = Duration::from_millis(100);

/// Which waiting session an operation goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// The session that became free last (last in, first out).
    Warm,
    /// The session that has waited longest (first in, first out).
    Turns,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    /// Waiting receivers by registration id, with when they began to wait; ids only
    /// grow, so this stays sorted.
    waiting: VecDeque<(u64, Instant, Waker)>,
    next_id: u64,
    sender_alive: bool,
    receivers: usize,
}

#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
    order: Order,
    stale: Duration,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves the queue's data consistent (every
        // change is a single push or pop), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Take the waiter the order picks, to be woken once the lock is released.
    fn pick(&self, s: &mut State<T>) -> Option<Waker> {
        let stale = |s: &State<T>| {
            s.waiting
                .front()
                .is_some_and(|(_, since, _)| since.elapsed() >= self.stale)
        };
        let w = match self.order {
            Order::Warm if !stale(s) => s.waiting.pop_back(),
            Order::Warm | Order::Turns => s.waiting.pop_front(),
        };
        w.map(|(_, _, w)| w)
    }
}

/// A queue of operations with one sender (the pacer) and any number of receivers (the
/// sessions of one endpoint).
pub(crate) fn queue<T>(order: Order) -> (Sender<T>, Receiver<T>) {
    queue_with(order, STALE)
}

fn queue_with<T>(order: Order, stale: Duration) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            waiting: VecDeque::new(),
            next_id: 0,
            sender_alive: true,
            receivers: 1,
        }),
        order,
        stale,
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

/// The pacer's end. Dropping it closes the queue: receivers get what is queued, then
/// [`Closed`].
#[derive(Debug)]
pub(crate) struct Sender<T>(Arc<Shared<T>>);

/// No receiver is left (`try_send`), or the sender is gone and nothing is queued (`recv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

impl<T> Sender<T> {
    /// Queue `item` and wake one waiting receiver.
    ///
    /// # Errors
    /// Every receiver is gone; the item is given back.
    pub(crate) fn try_send(&self, item: T) -> Result<(), (Closed, T)> {
        let mut s = self.0.lock();
        if s.receivers == 0 {
            return Err((Closed, item));
        }
        s.items.push_back(item);
        let woken = self.0.pick(&mut s);
        drop(s);
        if let Some(w) = woken {
            w.wake();
        }
        Ok(())
    }

    /// Items queued and not yet taken.
    pub(crate) fn len(&self) -> usize {
        self.0.lock().items.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.sender_alive = false;
        let all: Vec<Waker> = s.waiting.drain(..).map(|(_, _, w)| w).collect();
        drop(s);
        for w in all {
            w.wake();
        }
    }
}

/// A session's end.
#[derive(Debug)]
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.0.lock().receivers += 1;
        Receiver(Arc::clone(&self.0))
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.lock().receivers -= 1;
    }
}

impl<T> Receiver<T> {
    /// The next item; cancel-safe (an item is taken only when the future completes).
    pub(crate) fn recv(&self) -> Recv<'_, T> {
        Recv {
            shared: &self.0,
            id: None,
        }
    }
}

/// Waiting for an item.
#[derive(Debug)]
pub(crate) struct Recv<'a, T> {
    shared: &'a Shared<T>,
    /// This future's registration among the waiters, once it has waited.
    id: Option<u64>,
}

fn position<T>(s: &State<T>, id: u64) -> Option<usize> {
    s.waiting.binary_search_by_key(&id, |(i, _, _)| *i).ok()
}

impl<T> Future for Recv<'_, T> {
    type Output = Result<T, Closed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let shared = self.shared;
        let mut s = shared.lock();
        let registered = self.id.and_then(|id| position(&s, id));
        if let Some(item) = s.items.pop_front() {
            if let Some(at) = registered {
                s.waiting.remove(at);
            }
            self.id = None;
            return Poll::Ready(Ok(item));
        }
        if !s.sender_alive {
            if let Some(at) = registered {
                s.waiting.remove(at);
            }
            self.id = None;
            return Poll::Ready(Err(Closed));
        }
        match registered {
            Some(at) => s.waiting[at].2.clone_from(cx.waker()),
            None => {
                // Not waiting yet, or woken for an item another session took first.
                let id = s.next_id;
                s.next_id += 1;
                s.waiting
                    .push_back((id, Instant::now(), cx.waker().clone()));
                self.id = Some(id);
            }
        }
        Poll::Pending
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let mut s = self.shared.lock();
        match position(&s, id) {
            Some(at) => {
                s.waiting.remove(at);
            }
            None if !s.items.is_empty() => {
                // Woken for an item and given up before taking it: pass the wake on.
                let woken = self.shared.pick(&mut s);
                drop(s);
                if let Some(w) = woken {
                    w.wake();
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Which of `n` waiting sessions (registered in order 0..n) takes each of `k` items.
    async fn takers(order: Order, n: usize, k: usize) -> Vec<usize> {
        // Nobody counts as stale here, however slow the machine.
        let (tx, rx) = queue_with::<usize>(order, Duration::from_secs(3600));
        let log = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..n {
            let rx = rx.clone();
            let log = Arc::clone(&log);
            let done = Arc::clone(&done);
            tasks.push(tokio::spawn(async move {
                while let Ok(_item) = rx.recv().await {
                    log.lock().unwrap().push(i);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }));
            // Let session i register before the next.
            tokio::task::yield_now().await;
        }
        for item in 0..k {
            tx.try_send(item).unwrap();
            while done.load(Ordering::SeqCst) <= item {
                tokio::task::yield_now().await;
            }
        }
        drop(tx);
        for t in tasks {
            t.await.unwrap();
        }
        let v = log.lock().unwrap().clone();
        v
    }

    #[tokio::test]
    async fn warm_keeps_the_last_freed_session_busy_and_turns_walk_all() {
        // One item at a time: the session that took the last one is free again first.
        assert_eq!(takers(Order::Warm, 4, 6).await, vec![3; 6]);
        assert_eq!(takers(Order::Turns, 4, 6).await, vec![0, 1, 2, 3, 0, 1]);
    }

    /// A session waits; `pause` later a second one registers; an item is sent, and the
    /// second is dropped without taking it or kept waiting. What the first one gets.
    async fn first_waiter_gets(
        (tx, rx): (Sender<u32>, Receiver<u32>),
        pause: Duration,
        drop_second: bool,
    ) -> Result<u32, Closed> {
        let first = rx.clone();
        let first = tokio::spawn(async move { first.recv().await });
        tokio::task::yield_now().await;
        std::thread::sleep(pause);
        let mut second = Box::pin(rx.recv());
        assert!(second
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending());
        tx.try_send(7).unwrap();
        if drop_second {
            drop(second);
        }
        tokio::time::timeout(Duration::from_secs(5), first)
            .await
            .expect("the first session was woken")
            .unwrap()
    }

    #[tokio::test]
    async fn a_session_that_waited_too_long_takes_the_next_item() {
        let stale = Duration::from_millis(20);
        let got = first_waiter_gets(queue_with(Order::Warm, stale), stale, false).await;
        assert_eq!(got, Ok(7));
    }

    #[tokio::test]
    async fn every_item_is_taken_once_and_closing_ends_every_receiver() {
        for order in [Order::Warm, Order::Turns] {
            let (tx, rx) = queue::<u32>(order);
            let sum = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let rx = rx.clone();
                let sum = Arc::clone(&sum);
                tasks.push(tokio::spawn(async move {
                    let mut n = 0;
                    while let Ok(x) = rx.recv().await {
                        sum.fetch_add(x as usize, Ordering::SeqCst);
                        n += 1;
                        if n % 3 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                }));
            }
            for x in 1..=1000u32 {
                tx.try_send(x).unwrap();
                if x % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            drop(tx);
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(sum.load(Ordering::SeqCst), 500_500, "{order:?}");
            assert_eq!(rx.recv().await, Err(Closed));
        }
    }

    #[tokio::test]
    async fn a_woken_session_that_gives_up_passes_the_item_on() {
        // The second registered last, so Warm wakes it first; it is dropped (a session
        // whose select! took its cancellation branch) without taking the item.
        let got = first_waiter_gets(queue(Order::Warm), Duration::ZERO, true).await;
        assert_eq!(got, Ok(7));
    }

    #[test]
    fn sending_without_receivers_gives_the_item_back() {
        let (tx, rx) = queue::<u32>(Order::Turns);
        drop(rx);
        assert_eq!(tx.try_send(3), Err((Closed, 3)));
        assert!(tx.is_empty());
    }
}
