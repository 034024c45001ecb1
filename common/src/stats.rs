//! Per-operation counts and latency histograms over some span of time, and their exact
//! merge. A worker fills one per session, operation and interval; the coordinator
//! merges them per interval, per worker and for the cluster.

use crate::histogram::{decode, encode, merge, new_latency, HistogramError, Latency};
use crate::outcome::ErrorClass;

/// How many error messages of each class are kept per operation.
pub const ERROR_SAMPLES_PER_CLASS: usize = 3;

/// One error message kept for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorSample {
    pub class: ErrorClass,
    pub message: String,
}

/// Most instances one [`OpStats`] tells apart (a cluster's writer and its replicas).
pub const MAX_INSTANCES: usize = 64;

/// What one server instance served of an operation: the sessions that ran on it, its
/// successes and failures, and their response times.
#[derive(Debug, Clone)]
pub struct InstanceStats {
    /// As the server names itself (see `Session::instance`).
    pub name: String,
    /// It said it was read-only (a replica, or a demoted writer).
    pub read_only: bool,
    /// Sessions that were on it in this span (each counted once per interval, with the
    /// first operation it ran there).
    pub sessions: u32,
    pub ok: u64,
    pub errors: u64,
    pub response: Latency,
}

impl Default for InstanceStats {
    fn default() -> Self {
        InstanceStats::new("", false)
    }
}

impl InstanceStats {
    pub fn new(name: &str, read_only: bool) -> Self {
        InstanceStats {
            name: name.to_string(),
            read_only,
            sessions: 0,
            ok: 0,
            errors: 0,
            response: new_latency(),
        }
    }

    pub fn merge(&mut self, other: &InstanceStats) {
        self.read_only |= other.read_only;
        self.sessions = self.sessions.saturating_add(other.sessions);
        self.ok = self.ok.saturating_add(other.ok);
        self.errors = self.errors.saturating_add(other.errors);
        merge(&mut self.response, &other.response);
    }
}

/// An [`OpStats`] with its histograms encoded (V2+deflate): a few KB instead of the
/// 16–90 KB its three dense histograms hold. The coordinator keeps every interval until
/// the report; packed, an hour of one-second intervals fits in tens of MB, not GB.
#[derive(Debug, Clone)]
pub struct PackedStats {
    /// The counts and error samples, with empty histograms that hold no buckets.
    counts: Counts,
    response: Vec<u8>,
    service: Vec<u8>,
    lag: Vec<u8>,
}

/// The scalar part of an [`OpStats`].
#[derive(Debug, Clone)]
struct Counts {
    ok: u64,
    errors: [u64; ErrorClass::COUNT],
    counters: OpCounters,
    samples: Vec<ErrorSample>,
}

impl PackedStats {
    /// # Errors
    /// A histogram cannot be encoded (a bug, not a runtime condition).
    pub fn pack(s: &OpStats) -> Result<Self, HistogramError> {
        Ok(PackedStats {
            counts: Counts {
                ok: s.ok,
                errors: s.errors,
                counters: s.counters(),
                samples: s.samples.clone(),
            },
            response: encode(&s.response)?,
            service: encode(&s.service)?,
            lag: encode(&s.lag)?,
        })
    }

    /// The stats as they were packed, exactly.
    ///
    /// # Errors
    /// The bytes do not decode (only if they were not made by [`PackedStats::pack`]).
    pub fn unpack(&self) -> Result<OpStats, HistogramError> {
        let c = &self.counts;
        Ok(OpStats::from_parts(
            c.ok,
            c.errors,
            c.counters,
            decode(&self.response)?,
            decode(&self.service)?,
            decode(&self.lag)?,
            c.samples.clone(),
        ))
    }

    /// Bytes held, for memory accounting in tests and benches.
    pub fn encoded_len(&self) -> usize {
        self.response.len() + self.service.len() + self.lag.len()
    }
}

/// Declares [`OpStats`] and [`OpCounters`] from one list of counters, so that a new
/// counter is one line here: holding, merging, resetting and packing it, and keeping it
/// in a checkpoint, all follow from the list. The wire carries each counter in its own
/// protobuf field (`fleetload.proto`, converted in `wire/measure.rs`), and the report
/// chooses where to show it; those are the other places a new counter goes.
macro_rules! op_stats {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// Counts and histograms of one operation.
        #[derive(Debug, Clone)]
        pub struct OpStats {
            /// Successful operations (equals `response.len()`).
            pub ok: u64,
            pub errors: [u64; ErrorClass::COUNT],
            $($(#[doc = $doc])* pub $name: u64,)*
            /// Completion minus intended start (open loop) or send (closed loop), µs.
            pub response: Latency,
            /// Completion minus actual send, µs.
            pub service: Latency,
            /// Actual send minus intended start, µs.
            pub lag: Latency,
            pub samples: Vec<ErrorSample>,
            /// The same operations by the instance that served them. Carried from the
            /// worker to the coordinator's merge, which keeps them apart (`merge` leaves
            /// them out).
            pub instances: Vec<InstanceStats>,
        }

        /// An operation's counters besides `ok` and `errors`, by name: what a checkpoint
        /// keeps and a packed interval holds. A name missing from an older file reads
        /// as zero.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct OpCounters {
            $($(#[doc = $doc])* #[serde(default)] pub $name: u64,)*
        }

        impl OpCounters {
            /// The counters' names, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// The counters' values, in the order of [`OpCounters::NAMES`].
            pub fn values(&self) -> Vec<u64> {
                vec![$(self.$name),*]
            }
        }

        impl OpStats {
            /// Stats from their parts (a packed interval, a checkpoint, the wire).
            #[allow(clippy::too_many_arguments)]
            pub fn from_parts(
                ok: u64,
                errors: [u64; ErrorClass::COUNT],
                counters: OpCounters,
                response: Latency,
                service: Latency,
                lag: Latency,
                samples: Vec<ErrorSample>,
            ) -> OpStats {
                OpStats {
                    ok,
                    errors,
                    $($name: counters.$name,)*
                    response,
                    service,
                    lag,
                    samples,
                    instances: Vec::new(),
                }
            }

            /// The counters besides `ok` and `errors`.
            pub fn counters(&self) -> OpCounters {
                OpCounters { $($name: self.$name),* }
            }

            fn add_counters(&mut self, other: &OpStats) {
                $(self.$name += other.$name;)*
            }

            fn reset_counters(&mut self) {
                $(self.$name = 0;)*
            }
        }
    };
}

op_stats! {
    /// Operations never started because the worker was too far behind schedule.
    dropped_backlog,
    /// Deadlocks and serialization failures retried inside operations (not operations).
    retries,
    /// Rows returned (reads) or matched (updates) by operations on existing keys.
    rows,
    /// Those operations that found no row: reads of keys the table does not have.
    empty,
    /// Successful operations that ended in the rollback their scenario asks for (TPC-C
    /// New-Order's unused item): counted in `ok`, and here.
    rolled_back,
    /// Successful operations that touched another worker's keys (TPC-C's remote
    /// warehouses).
    remote,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats::from_parts(
            0,
            [0; ErrorClass::COUNT],
            OpCounters::default(),
            new_latency(),
            new_latency(),
            new_latency(),
            Vec::new(),
        )
    }
}

impl OpStats {
    /// Empty stats whose histograms keep 2 significant digits (per-worker run totals on
    /// the coordinator; see [`crate::histogram::COARSE_SIGFIG`]).
    pub fn coarse() -> Self {
        OpStats {
            response: crate::histogram::new_coarse_latency(),
            service: crate::histogram::new_coarse_latency(),
            lag: crate::histogram::new_coarse_latency(),
            ..OpStats::default()
        }
    }

    /// Saturating: counts decoded from a worker are summed before they are bounded.
    pub fn error_total(&self) -> u64 {
        self.errors.iter().fold(0, |a, e| a.saturating_add(*e))
    }

    /// Count an error, keeping its message if fewer than a few of its class are kept.
    pub fn add_error(&mut self, class: ErrorClass, message: impl FnOnce() -> String) {
        self.errors[class.index()] += 1;
        if self.samples.iter().filter(|s| s.class == class).count() < ERROR_SAMPLES_PER_CLASS {
            self.samples.push(ErrorSample {
                class,
                message: message(),
            });
        }
    }

    /// Add `other` into `self`: counts sum, histograms merge exactly.
    pub fn merge(&mut self, other: &OpStats) {
        self.ok += other.ok;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        self.add_counters(other);
        merge(&mut self.response, &other.response);
        merge(&mut self.service, &other.service);
        merge(&mut self.lag, &other.lag);
        for s in &other.samples {
            if self.samples.iter().filter(|x| x.class == s.class).count() < ERROR_SAMPLES_PER_CLASS
            {
                self.samples.push(s.clone());
            }
        }
    }

    /// Add `other`'s per-instance counts into `self`'s (the worker merging its
    /// recorders; the coordinator keeps instances apart from the operations' merge).
    pub fn merge_instances(&mut self, other: &OpStats) {
        for i in &other.instances {
            match self.instances.iter().position(|x| x.name == i.name) {
                Some(k) => self.instances[k].merge(i),
                None if self.instances.len() < MAX_INSTANCES => self.instances.push(i.clone()),
                None => {}
            }
        }
    }

    /// Reset for reuse without reallocating the histograms.
    pub fn reset(&mut self) {
        self.ok = 0;
        self.errors = [0; ErrorClass::COUNT];
        self.reset_counters();
        self.response.reset();
        self.service.reset();
        self.lag.reset();
        self.samples.clear();
        self.instances.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.ok == 0 && self.error_total() == 0 && self.dropped_backlog == 0 && self.retries == 0
    }
}

/// Totals of one operation without histograms: what a worker reports it executed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpTotals {
    pub ok: u64,
    pub errors: [u64; ErrorClass::COUNT],
    pub dropped_backlog: u64,
    pub retries: u64,
}

impl OpTotals {
    /// Add another count of the same operation.
    pub fn merge(&mut self, t: &OpTotals) {
        self.ok += t.ok;
        for (a, b) in self.errors.iter_mut().zip(t.errors) {
            *a += b;
        }
        self.dropped_backlog += t.dropped_backlog;
        self.retries += t.retries;
    }

    pub fn add(&mut self, s: &OpStats) {
        self.ok += s.ok;
        for (a, b) in self.errors.iter_mut().zip(s.errors) {
            *a += b;
        }
        self.dropped_backlog += s.dropped_backlog;
        self.retries += s.retries;
    }
}
