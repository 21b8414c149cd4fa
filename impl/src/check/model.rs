//! A stateright model of a whole cluster (master, servers in groups,
//! clients, the store) that drives the `failgroup-model` transitions
//! themselves, never a copy. Time is an explicit discrete clock: every node
//! has its own (servers' may lag the store's within the drift bound), timers
//! fire only when their deadline has come on their node's clock, and the
//! clock does not pass a due timer of a running node.
//!
//! Faults, each within a budget and before the fault horizon: message loss,
//! duplication and reordering (any delivery order), crash and restart of a
//! server (its memory is lost, it comes back as a new incarnation) and of
//! the master, a paused server (alive but silent: a gray failure), a
//! suspended host (paused, its clock stands still, and counts the time on
//! resume as CLOCK_BOOTTIME does), a second process of a paused server's
//! identity (the first lives on as its "twin"), a cut link between two
//! nodes, clock lag, and the store's clock stepping forward.

use super::config::CheckConfig;
use super::world::{Action, ClusterState};
use failgroup_model::*;
use stateright::{Model, Property};
use std::sync::Arc;

/// The model: static configuration and the roles' static parts.
pub struct ClusterModel {
    pub cfg: CheckConfig,
    pub topology: Arc<Topology>,
    pub servers: Vec<Server>,
    pub clients: Vec<Client>,
    pub master: Master,
    pub keys: Vec<Key>,
}

impl Model for ClusterModel {
    type State = ClusterState;
    type Action = Action;

    fn init_states(&self) -> Vec<ClusterState> {
        self.initial_states()
    }

    fn actions(&self, st: &ClusterState, actions: &mut Vec<Action>) {
        self.possible_actions(st, actions)
    }

    fn next_state(&self, last: &ClusterState, action: Action) -> Option<ClusterState> {
        self.apply(last, action)
    }

    fn format_action(&self, action: &Action) -> String {
        super::narrate::describe(None, action)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.all_properties()
    }
}

impl CheckConfig {
    pub fn into_model(self) -> ClusterModel {
        ClusterModel::new(self)
    }
}
