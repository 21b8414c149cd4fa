//! Why a node (a server or the master) could not start, or stopped.

use crate::config::BadConfig;
use crate::net::ListenError;
use crate::store::StoreError;
use std::fmt;
use std::io;

#[derive(Debug)]
pub enum NodeError {
    Config(BadConfig),
    Store(StoreError),
    Listen(ListenError),
    /// A call to the operating system failed while `doing` something.
    Os {
        doing: &'static str,
        error: io::Error,
    },
    /// The topology in the store, or the one the master sent to a joining
    /// server, is unusable: what and why.
    Topology(String),
    /// The TLS settings' files could not be used.
    Tls(crate::net::tls::TlsError),
}

impl NodeError {
    pub fn os(doing: &'static str) -> impl FnOnce(io::Error) -> NodeError {
        move |error| NodeError::Os { doing, error }
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Config(e) => e.fmt(f),
            NodeError::Store(e) => e.fmt(f),
            NodeError::Listen(e) => e.fmt(f),
            NodeError::Os { doing, error } => write!(f, "{doing}: {error}"),
            NodeError::Topology(why) => write!(f, "topology: {why}"),
            NodeError::Tls(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for NodeError {}

impl From<BadConfig> for NodeError {
    fn from(e: BadConfig) -> NodeError {
        NodeError::Config(e)
    }
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> NodeError {
        NodeError::Store(e)
    }
}

impl From<ListenError> for NodeError {
    fn from(e: ListenError) -> NodeError {
        NodeError::Listen(e)
    }
}

impl From<crate::net::tls::TlsError> for NodeError {
    fn from(e: crate::net::tls::TlsError) -> NodeError {
        NodeError::Tls(e)
    }
}
