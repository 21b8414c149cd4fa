//! What the server and master event loops and the client share: non-blocking
//! connections with buffers, the node protocol (its wire format and a
//! blocking link for clients and tools), listeners, timers and the clock.

mod clock;
mod connection;
mod endpoint;
pub mod link;
mod socket;
pub mod tls;
pub mod wire;

pub use clock::Clock;
pub use connection::{Connection, Proto};
pub use endpoint::Endpoint;
pub use link::NodeLink;
pub use socket::{listen, resolve, ListenError};

/// A role's named timers: the core's one driver, on the runtime's clock.
pub use failgroup_model::Timers;
