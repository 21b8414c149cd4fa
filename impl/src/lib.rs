//! failgroup: the runtime around the pure core in `failgroup-model`, and the
//! model checker that drives that same core.

pub mod check;
pub mod resp;
pub mod sqlite;
pub mod wire;
