//! The ML stand-in for SQLite: SQLite has no stored functions, so `will_churn`,
//! `will_churn_model`, `fl_ml_request` and `fl_ml_counter` are Rust functions
//! registered on every SQLite connection fleetload opens.
//!
//! They behave as the MariaDB and PostgreSQL stand-ins do, across worker *processes*:
//! at most `capacity` requests at once through exclusive file locks on
//! `<database>.ml-slot-<i>`, and requests / logical / single-row counts in
//! `<database>.ml-counters`, updated under a file lock. sqlx runs each SQLite
//! connection on its own thread, so a function that sleeps or waits for a slot blocks
//! only its own connection, like a session waiting on a busy endpoint.
//!
//! This is the second of the workspace's two `unsafe` exceptions: registering a
//! function needs the raw `sqlite3` handle. Everything unsafe stays in this file, each
//! block with its reason.
#![allow(unsafe_code)]

use crate::ml::MlSettings;
use fleetload_common::churn::{self, Customer};
use libsqlite3_sys as ffi;
use std::ffi::{c_int, c_void};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

/// The endpoint one connection's functions share.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    settings: MlSettings,
    database: PathBuf,
}

/// Counter positions in the counters file.
const REQUESTS: usize = 0;
const LOGICAL: usize = 1;
const SINGLE: usize = 2;

impl Endpoint {
    pub(crate) fn new(database: &Path, settings: MlSettings) -> Self {
        Endpoint {
            settings,
            database: database.to_path_buf(),
        }
    }

    fn sidecar(&self, suffix: &str) -> PathBuf {
        let mut name = self.database.as_os_str().to_os_string();
        name.push(suffix);
        PathBuf::from(name)
    }

    fn open(path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    }

    /// Forget the counts (prepare does this when it reinstalls the stand-in).
    pub(crate) fn reset_counters(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.sidecar(".ml-counters")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// One request for `rows` rows: wait for a free slot, pay its cost, count it.
    fn request(&self, rows: u64, single: bool) -> std::io::Result<()> {
        use rustix::fs::{flock, FlockOperation};
        let cap = self.settings.capacity.max(1);
        let mut held = None;
        for slot in 0..cap {
            let f = Self::open(&self.sidecar(&format!(".ml-slot-{slot}")))?;
            if flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok() {
                held = Some(f);
                break;
            }
        }
        let _slot = match held {
            Some(f) => f,
            None => {
                // All busy: queue on one slot, spread by the clock's low bits.
                let slot = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .subsec_nanos()
                    % cap;
                let f = Self::open(&self.sidecar(&format!(".ml-slot-{slot}")))?;
                flock(&f, FlockOperation::LockExclusive)?;
                f
            }
        };
        std::thread::sleep(
            self.settings.overhead
                + self.settings.row_cost * u32::try_from(rows).unwrap_or(u32::MAX),
        );
        self.add(&[(REQUESTS, 1), (LOGICAL, rows), (SINGLE, u64::from(single))])
        // The slot's lock goes with its file when `_slot` is dropped here.
    }

    fn add(&self, deltas: &[(usize, u64)]) -> std::io::Result<()> {
        use rustix::fs::{flock, FlockOperation};
        let mut f = Self::open(&self.sidecar(".ml-counters"))?;
        flock(&f, FlockOperation::LockExclusive)?;
        let mut counts = read_counts(&mut f)?;
        for (i, d) in deltas {
            counts[*i] += d;
        }
        f.seek(SeekFrom::Start(0))?;
        let bytes: Vec<u8> = counts.iter().flat_map(|c| c.to_le_bytes()).collect();
        f.write_all(&bytes)
    }

    /// The current value of counter `name` (requests, logical or single).
    pub(crate) fn counter(&self, name: &str) -> std::io::Result<u64> {
        use rustix::fs::{flock, FlockOperation};
        let i = match name {
            "requests" => REQUESTS,
            "logical" => LOGICAL,
            "single" => SINGLE,
            _ => {
                return Err(std::io::Error::other(format!(
                    "no stand-in counter {name:?}"
                )))
            }
        };
        let mut f = Self::open(&self.sidecar(".ml-counters"))?;
        flock(&f, FlockOperation::LockShared)?;
        Ok(read_counts(&mut f)?[i])
    }
}

fn read_counts(f: &mut File) -> std::io::Result<[u64; 3]> {
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let mut counts = [0u64; 3];
    for (i, c) in counts.iter_mut().enumerate() {
        if let Some(chunk) = buf.get(i * 8..i * 8 + 8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *c = u64::from_le_bytes(b);
        }
    }
    Ok(counts)
}

/// The arguments of one call, read out of SQLite's values.
struct Args<'a> {
    values: &'a [*mut ffi::sqlite3_value],
}

impl Args<'_> {
    fn int(&self, i: usize) -> i64 {
        // SAFETY: `i` < argc (callers index only within the declared arity, which SQLite
        // enforces) and the value pointers are valid for the duration of the call.
        unsafe { ffi::sqlite3_value_int64(self.values[i]) }
    }

    fn real(&self, i: usize) -> f64 {
        // SAFETY: as in `int`.
        unsafe { ffi::sqlite3_value_double(self.values[i]) }
    }

    fn text(&self, i: usize) -> String {
        // SAFETY: as in `int`; sqlite3_value_text returns NULL or a pointer to
        // sqlite3_value_bytes bytes that stay valid until the next call on this value,
        // and we copy them at once.
        unsafe {
            let p = ffi::sqlite3_value_text(self.values[i]);
            if p.is_null() {
                return String::new();
            }
            let n = usize::try_from(ffi::sqlite3_value_bytes(self.values[i])).unwrap_or(0);
            String::from_utf8_lossy(std::slice::from_raw_parts(p, n)).into_owned()
        }
    }

    /// The fifteen model inputs in `ml::FEATURES` order.
    fn customer(&self) -> Customer {
        Customer {
            id: 0,
            state: "",
            account_length: self.int(1),
            area_code: self.int(2),
            phone: String::new(),
            intl_plan: self.text(3) == "yes",
            vmail_plan: self.text(4) == "yes",
            vmail_message: self.int(5),
            day_mins: self.real(6),
            day_calls: self.int(7),
            day_charge: 0.0,
            eve_mins: self.real(8),
            eve_calls: self.int(9),
            eve_charge: 0.0,
            night_mins: self.real(10),
            night_calls: self.int(11),
            night_charge: 0.0,
            intl_mins: self.real(12),
            intl_calls: self.int(13),
            intl_charge: 0.0,
            custserv_calls: self.int(14),
            churn: false,
        }
    }
}

/// What a registered function computes.
#[derive(Clone, Copy)]
enum Kind {
    Model,
    WillChurn,
    Request,
    Counter,
}

struct Registered {
    kind: Kind,
    endpoint: Endpoint,
}

enum Answer {
    Text(&'static str),
    Int(i64),
}

fn compute(r: &Registered, args: &Args<'_>) -> Result<Answer, String> {
    match r.kind {
        Kind::Model => Ok(Answer::Text(churn::label(churn::predict(&args.customer())))),
        Kind::WillChurn => {
            r.endpoint
                .request(1, true)
                .map_err(|e| format!("ML stand-in request failed: {e}"))?;
            Ok(Answer::Text(churn::label(churn::predict(&args.customer()))))
        }
        Kind::Request => {
            let rows = u64::try_from(args.int(0)).unwrap_or(0);
            r.endpoint
                .request(rows, args.int(1) == 1)
                .map_err(|e| format!("ML stand-in request failed: {e}"))?;
            Ok(Answer::Int(i64::try_from(rows).unwrap_or(i64::MAX)))
        }
        Kind::Counter => {
            let v = r
                .endpoint
                .counter(&args.text(0))
                .map_err(|e| e.to_string())?;
            Ok(Answer::Int(i64::try_from(v).unwrap_or(i64::MAX)))
        }
    }
}

unsafe extern "C" fn call(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: SQLite passes the user data given at registration (a live
    // `Box<Registered>`, freed only by `destroy`) and `argc` valid value pointers.
    let (r, values) = unsafe {
        let r = &*(ffi::sqlite3_user_data(ctx) as *const Registered);
        let n = usize::try_from(argc).unwrap_or(0);
        let values = if n == 0 {
            &[][..]
        } else {
            std::slice::from_raw_parts(argv, n)
        };
        (r, values)
    };
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        compute(r, &Args { values })
    }))
    .unwrap_or_else(|_| Err("ML stand-in panicked".to_string()));
    // SAFETY: `ctx` is the live context of this call; SQLITE_TRANSIENT makes SQLite copy
    // the text before we return.
    unsafe {
        match answer {
            Ok(Answer::Text(t)) => ffi::sqlite3_result_text(
                ctx,
                t.as_ptr().cast(),
                c_int::try_from(t.len()).unwrap_or(0),
                ffi::SQLITE_TRANSIENT(),
            ),
            Ok(Answer::Int(v)) => ffi::sqlite3_result_int64(ctx, v),
            Err(m) => ffi::sqlite3_result_error(
                ctx,
                m.as_ptr().cast(),
                c_int::try_from(m.len()).unwrap_or(0),
            ),
        }
    }
}

unsafe extern "C" fn destroy(p: *mut c_void) {
    // SAFETY: `p` is the Box<Registered> leaked at registration; SQLite calls this once.
    drop(unsafe { Box::from_raw(p.cast::<Registered>()) });
}

/// Register the stand-in's functions on one connection.
///
/// # Errors
/// SQLite refused a registration (returns its result code).
pub(crate) fn register(handle: NonNull<ffi::sqlite3>, endpoint: &Endpoint) -> Result<(), c_int> {
    let functions: [(&[u8], c_int, Kind, c_int); 4] = [
        (
            b"will_churn_model\0",
            15,
            Kind::Model,
            ffi::SQLITE_DETERMINISTIC,
        ),
        (b"will_churn\0", 15, Kind::WillChurn, 0),
        (b"fl_ml_request\0", 2, Kind::Request, 0),
        (b"fl_ml_counter\0", 1, Kind::Counter, 0),
    ];
    for (name, arity, kind, flags) in functions {
        let data = Box::into_raw(Box::new(Registered {
            kind,
            endpoint: endpoint.clone(),
        }));
        // SAFETY: `handle` is a live connection the caller holds locked; `name` is
        // NUL-terminated; `data` is owned by SQLite from here and freed by `destroy`
        // (also when registration fails, as sqlite3_create_function_v2 documents).
        let rc = unsafe {
            ffi::sqlite3_create_function_v2(
                handle.as_ptr(),
                name.as_ptr().cast(),
                arity,
                ffi::SQLITE_UTF8 | flags,
                data.cast(),
                Some(call),
                None,
                None,
                Some(destroy),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
    }
    Ok(())
}
