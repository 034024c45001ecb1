//! Error classes. Database error codes map to a handful of classes that mean something
//! to an operator (docs/design.md, "Error classes"); counts travel by class, never by string.

use serde::{Deserialize, Serialize};

/// Why an operation did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// A session could not be opened (refused, unreachable, authentication).
    Connect = 0,
    /// The client deadline passed, or the server gave up waiting (lock wait, cancel).
    Timeout = 1,
    /// The connection broke under a running operation.
    ConnectionLost = 2,
    /// Deadlock or serialization failure: the transaction may be retried.
    Deadlock = 3,
    /// A constraint refused the write (duplicate key, foreign key, not null).
    Constraint = 4,
    /// Any other error the database returned.
    OtherSql = 5,
    /// The instance refused a write because it is read-only: a demoted writer (what
    /// clients of an Aurora writer endpoint see until its DNS name moves) or a replica.
    /// The session reconnects, resolving the name again.
    ReadOnly = 6,
}

impl ErrorClass {
    pub const COUNT: usize = 7;
    pub const ALL: [ErrorClass; Self::COUNT] = [
        ErrorClass::Connect,
        ErrorClass::Timeout,
        ErrorClass::ConnectionLost,
        ErrorClass::Deadlock,
        ErrorClass::Constraint,
        ErrorClass::OtherSql,
        ErrorClass::ReadOnly,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Option<Self> {
        Self::ALL.get(i).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::ConnectionLost => "connection_lost",
            ErrorClass::Deadlock => "deadlock",
            ErrorClass::Constraint => "constraint",
            ErrorClass::OtherSql => "other_sql",
            ErrorClass::ReadOnly => "read_only",
        }
    }

    /// Whether the session must reopen its connection after this error (a read-only
    /// instance included: the name may point at the new writer by now).
    pub fn needs_reconnect(self) -> bool {
        matches!(
            self,
            ErrorClass::Connect
                | ErrorClass::ConnectionLost
                | ErrorClass::Timeout
                | ErrorClass::ReadOnly
        )
    }

    /// Whether this error means the instance is unavailable to this session (as
    /// opposed to the workload's own errors: deadlocks, constraints, bad SQL): such
    /// errors open a session's outage, its next success closes it.
    pub fn is_unavailability(self) -> bool {
        self.needs_reconnect()
    }
}

/// Classify a MySQL/MariaDB error by its number (and SQLSTATE as a fallback).
pub fn classify_mysql(number: u16, sqlstate: Option<&str>) -> ErrorClass {
    match number {
        1205 | 3024 | 1969 => ErrorClass::Timeout,
        1213 => ErrorClass::Deadlock,
        1022 | 1048 | 1062 | 1216 | 1217 | 1451 | 1452 | 1557 | 1586 | 3819 => {
            ErrorClass::Constraint
        }
        1040 | 1044 | 1045 | 1129 | 1130 | 1698 => ErrorClass::Connect,
        1290 | 1836 => ErrorClass::ReadOnly,
        1053 | 1077 | 1152 | 1153 | 1154 | 1156 | 1158 | 1159 | 1160 | 1161 | 1927 | 2002
        | 2003 | 2006 | 2013 => ErrorClass::ConnectionLost,
        _ => sqlstate.map_or(ErrorClass::OtherSql, classify_sqlstate),
    }
}

/// Classify by SQLSTATE (PostgreSQL, and MySQL's fallback).
pub fn classify_sqlstate(code: &str) -> ErrorClass {
    match code {
        "57014" | "55P03" => ErrorClass::Timeout,
        "25006" => ErrorClass::ReadOnly,
        "40001" | "40P01" => ErrorClass::Deadlock,
        "28000" | "28P01" | "53300" | "3D000" => ErrorClass::Connect,
        "57P01" | "57P02" | "57P03" => ErrorClass::ConnectionLost,
        c if c.starts_with("08") => ErrorClass::ConnectionLost,
        c if c.starts_with("23") => ErrorClass::Constraint,
        _ => ErrorClass::OtherSql,
    }
}

/// Classify an SQLite (extended) result code.
pub fn classify_sqlite(code: &str) -> ErrorClass {
    let Ok(n) = code.parse::<u32>() else {
        return ErrorClass::OtherSql;
    };
    if n == 517 {
        // SQLITE_BUSY_SNAPSHOT: a WAL read transaction cannot become a write one because
        // another writer committed since it began. Waiting does not help; the
        // transaction must start over, exactly as after a serialization failure.
        return ErrorClass::Deadlock;
    }
    match n & 0xff {
        5 | 6 => ErrorClass::Timeout,          // SQLITE_BUSY, SQLITE_LOCKED
        19 => ErrorClass::Constraint,          // SQLITE_CONSTRAINT and its extended codes
        10 | 14 => ErrorClass::ConnectionLost, // SQLITE_IOERR, SQLITE_CANTOPEN
        _ => ErrorClass::OtherSql,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_documented_classes() {
        assert_eq!(classify_mysql(1213, Some("40001")), ErrorClass::Deadlock);
        assert_eq!(classify_mysql(1205, None), ErrorClass::Timeout);
        assert_eq!(classify_mysql(1062, Some("23000")), ErrorClass::Constraint);
        assert_eq!(classify_mysql(1045, Some("28000")), ErrorClass::Connect);
        assert_eq!(classify_mysql(2013, None), ErrorClass::ConnectionLost);
        assert_eq!(classify_mysql(1146, Some("42S02")), ErrorClass::OtherSql);
        assert_eq!(classify_sqlstate("40P01"), ErrorClass::Deadlock);
        assert_eq!(classify_sqlite("517"), ErrorClass::Deadlock);
        assert_eq!(classify_sqlite("5"), ErrorClass::Timeout);
        assert_eq!(classify_sqlstate("23505"), ErrorClass::Constraint);
        assert_eq!(classify_sqlstate("08006"), ErrorClass::ConnectionLost);
        assert_eq!(classify_sqlstate("57014"), ErrorClass::Timeout);
        assert_eq!(classify_sqlstate("42P01"), ErrorClass::OtherSql);
        assert_eq!(classify_sqlite("2067"), ErrorClass::Constraint);
        assert_eq!(classify_mysql(1290, Some("HY000")), ErrorClass::ReadOnly);
        assert_eq!(classify_mysql(1836, None), ErrorClass::ReadOnly);
        assert_eq!(classify_sqlstate("25006"), ErrorClass::ReadOnly);
        assert!(ErrorClass::ReadOnly.needs_reconnect());
        assert_eq!(classify_sqlite("5"), ErrorClass::Timeout);
        for (i, c) in ErrorClass::ALL.iter().enumerate() {
            assert_eq!(ErrorClass::from_index(i), Some(*c));
        }
    }
}
