//! The pure protocol core of failgroup.
//!
//! Three roles, each a pure state machine: [`Client`], [`Server`] and
//! [`Master`]. A role's `step(state, now, input, out)` takes its state, the
//! time on its own clock and one input, updates the state and appends
//! outputs (send, forward, reply, store command, set/cancel a named timer,
//! report to the master). Nothing here reads a clock, opens a socket or a
//! file, spawns a thread or draws a random number: a runtime (the
//! `failgroup` binary, the model checker, or yours) feeds inputs and carries
//! out outputs until none is left.
//!
//! The store the servers speak to is the [`store::Store`] trait; the in-memory
//! [`store::MemStore`] serves tests and the model checker.
//!
//! # Driving a client and a server by hand
//!
//! ```
//! use std::sync::Arc;
//! use failgroup_model::*;
//!
//! let topology = Arc::new(ClusterSpec::local(3, 1, 7101, SLOTS).validate().unwrap());
//! let config = ProtocolConfig::default();
//! let mut store = MemStore::default();
//! let now = Time(0);
//!
//! // The owner of key "k" starts and takes the serving rights of its slots,
//! // a batch at a time: each answer sends the next ask.
//! let owner = topology.owner(topology.slot(b"k"));
//! let server = Server::new(owner, topology.clone(), config.clone());
//! let mut sst = ServerState::default();
//! let mut sout = Vec::new();
//! server.step(&mut sst, now, ServerInput::Start { incarnation: 1 }, &mut sout);
//! // The store knows the process by its server and incarnation.
//! let me = Holder { server: owner, incarnation: 1 };
//! while let Some(i) = sout.iter().position(|o| matches!(o, ServerOutput::Store { .. })) {
//!     let ServerOutput::Store { tag, op } = sout.remove(i) else { unreachable!() };
//!     let reply = store.execute(me, op, now);
//!     server.step(&mut sst, now, ServerInput::Store { tag, reply }, &mut sout);
//! }
//!
//! // A client sends SET k v: it goes to the owner (c11).
//! let client = Client::new(ClientId(1), topology.clone(), config.clone());
//! let mut cst = ClientState::default();
//! let mut cout = Vec::new();
//! let op = Op::Set(b"k".to_vec(), b"v".to_vec());
//! client.step(&mut cst, now, ClientInput::Invoke { seq: 1, op }, &mut cout);
//! let ClientOutput::Send { to, req, op } = cout.remove(0) else { panic!() };
//! assert_eq!(to, owner);
//!
//! // The server writes it through to the store under its epoch, then replies.
//! sout.clear();
//! let fwd = Forwarded { req, op, hops: 0 };
//! server.step(&mut sst, now, ServerInput::Request { origin: Origin::Client(7), fwd }, &mut sout);
//! let Some(ServerOutput::Store { tag, op }) = sout.into_iter().find(|o| matches!(o, ServerOutput::Store { .. })) else {
//!     panic!("the write goes to the store")
//! };
//! let mut sout = Vec::new();
//! let reply = store.execute(me, op, now);
//! server.step(&mut sst, now, ServerInput::Store { tag, reply }, &mut sout);
//! assert!(sout.contains(&ServerOutput::Reply { to: Origin::Client(7), result: OpResult::Ok }));
//!
//! // The reply goes back to the client, which completes the operation.
//! cout.clear();
//! client.step(&mut cst, now, ClientInput::Reply { seq: 1, from: owner, result: OpResult::Ok }, &mut cout);
//! assert!(cout.contains(&ClientOutput::Complete { seq: 1, result: OpResult::Ok }));
//! ```

pub mod bytes;
pub mod client;
pub mod config;
pub mod evict;
pub mod glob;
pub mod lease;
pub mod master;
pub mod messages;
pub mod server;
pub mod store;
pub mod timers;
pub mod topology;
pub mod types;

pub use client::{Client, ClientInput, ClientOutput, ClientState, ClientTimer};
pub use config::{Mode, Mutant, ProtocolConfig, Timing};
pub use evict::{Policy, Usage};
pub use lease::{Lease, LeaseOutput, LeaseState, MASTER_SLOT};
pub use master::{Master, MasterEvent, MasterInput, MasterOutput, MasterState, MasterTimer};
pub use messages::{Forwarded, Liveness, MasterMsg, Origin, Report, View};
pub use server::{
    CacheKey, KeyRef, Server, ServerEvent, ServerInput, ServerOutput, ServerState, ServerTimer, Stage, StoreTag,
};
pub use store::{
    apply_write, format_float, inspect, may_take, parse_float, Applied, Held, Holder, Keep, KeyAfter, KvRow, MemStore,
    RightRecord, Rows, Rules, ScanRow, Stamp, Store, StoreOp, StoreReply, Write, MAX_STRING,
};
pub use timers::{TimerChange, TimerOutput, Timers};
pub use topology::{key_slot, ClusterSpec, ConfigError, Topology, TopologyChange, SLOTS};
pub use types::*;
