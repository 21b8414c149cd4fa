//! The server process: one event loop (mio, no async runtime) around the
//! core's [`Server`], and a store thread. The loop feeds the core socket
//! messages, store replies, timer expiries and `now`, and carries out what
//! it outputs; every protocol decision is the core's.
//!
//! One port speaks both RESP (Redis clients) and the node protocol (peers,
//! the master, library clients): a node connection starts with a zero byte,
//! which no RESP request does.

mod clients;
mod cluster;
mod command_table;
pub mod commands;
mod info;
mod links;
mod local;
mod metrics;
mod node;
mod pipeline;
mod session;
mod slowlog;

pub use node::{main, master_topology, ServerNode};
