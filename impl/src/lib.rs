//! failgroup: the runtime around the pure core in `failgroup-model`, and the
//! model checker that drives that same core.
//!
//! - [`server`]: a cache server's event loop, its RESP sessions, peer and
//!   master links, local commands and INFO;
//! - [`master`]: the master's loop;
//! - [`store`]: the store thread every server runs, over SQLite or PostgreSQL;
//! - [`net`]: connections, the node wire format, the clock;
//! - [`resp`]: the RESP codec; [`client`]: the blocking Rust client;
//! - [`config`]: the cluster file; [`cli`]: the `failgroup` command line;
//! - [`check`]: the model checker; [`mem`]: memory as INFO reports it;
//!   [`util`]: small helpers;
//!   [`node_error`]: why a node could not start.

pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod master;
pub mod mem;
pub mod metrics;
pub mod net;
pub mod node_error;
pub mod resp;
pub mod server;
pub mod store;
pub mod util;

pub use client::{Client, ClientOptions, Error};
