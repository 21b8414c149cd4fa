//! The store: the row interface over which the model crate's one store
//! semantics runs ([`tables`]), databases as the store thread uses them
//! ([`batch`]), the thread itself ([`thread`]), and the two databases
//! ([`sqlite`], [`postgres`]).
//!
//! Databases as the core's store: a backend provides row operations
//! ([`Tables`]); [`run`] carries a [`StoreOp`] out with the model crate's
//! `store::execute`, the one implementation of the store's semantics, which
//! the model checker runs over `MemStore`.
//!
//! Tables: `kv` (key, value, version, expiry), `rights` (each slot's serving
//! right: the holder's server name and incarnation, fencing epoch, renewal
//! count, released), `applied` (replies of applied writes, so a retried
//! write is applied at most once). Rights carry no time: a taker waits on
//! its own clock (see `failgroup_model::store`). Times are the store's
//! clock in Unix milliseconds, taken once per transaction, for keys' time
//! to live and for pruning only.

#[cfg(test)]
pub mod agreement;
pub mod batch;
pub mod postgres;
pub mod sqlite;
pub mod tables;
pub mod thread;

pub use batch::{BatchStore, ClusterMark, Done, Job, StoreError};
pub use tables::{run, run_all, Identity, RightRow, Row, TableScanRow, Tables, APPLIED_KEEP_MS};
pub use thread::{failed_batch, run_store, StoreStats};
