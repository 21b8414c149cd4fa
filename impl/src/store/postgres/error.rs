//! Why a PostgreSQL call failed.

use std::fmt;

/// Why a PostgreSQL call failed. Only a lost connection is worth a new
/// connection; a server error may be retried as a transaction when it says
/// so; a decoding error is a bug or a server this client cannot use, and is
/// not retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgError {
    /// The server answered with an error (SQLSTATE `code`).
    Server { code: String, msg: String },
    /// The connection failed: connecting, reading, writing, a timeout, or
    /// the server closed it.
    Io(String),
    /// Bytes that did not encode or decode as this client expects.
    Protocol(String),
    /// The server cannot be used as configured (authentication method,
    /// schema version).
    Unusable(String),
}

impl PgError {
    pub(super) fn io(e: impl fmt::Display) -> PgError {
        PgError::Io(e.to_string())
    }

    pub(super) fn protocol(e: impl fmt::Display) -> PgError {
        PgError::Protocol(e.to_string())
    }

    /// Serialization failure, deadlock or a lock not granted in time: the
    /// transaction may simply be retried.
    pub fn retryable(&self) -> bool {
        matches!(self, PgError::Server { code, .. } if matches!(code.as_str(), "40001" | "40P01" | "55P03"))
    }

    /// The connection is gone: open a new one.
    pub fn connection_lost(&self) -> bool {
        matches!(self, PgError::Io(_))
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::Server { code, msg } => write!(f, "postgres: {msg} ({code})"),
            PgError::Io(e) => write!(f, "postgres connection: {e}"),
            PgError::Protocol(e) => write!(f, "postgres protocol: {e}"),
            PgError::Unusable(e) => write!(f, "postgres: {e}"),
        }
    }
}

impl std::error::Error for PgError {}
