//! failgroup: the runtime around the pure core in `failgroup-model`, and the
//! model checker that drives that same core.

pub mod check;
pub mod client;
pub mod commands;
pub mod config;
pub mod dev;
pub mod master;
pub mod net;
pub mod pg;
pub mod pgstore;
pub mod resp;
pub mod server;
pub mod sqlite;
pub mod tables;
pub mod wire;

pub use client::{Client, Error};
