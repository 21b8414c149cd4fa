//! The master's lease (issue 17): several master processes may run; the one
//! that holds the lease acts (probes, notices, topology changes), the
//! others stand by. The lease is a serving right like a slot's, on a slot no
//! key hashes to ([`MASTER_SLOT`]), kept in the same store with the same
//! commands: its holder trusts it until `lease - 2 * max_drift` after it
//! sent each renewal; a standby takes it only after it has watched the
//! record's stamp unchanged for a whole lease on its own clock (the store
//! hands it over only at that stamp), so two masters never act at once
//! (`one acting master`, model-checked with `--standbys`). A master that
//! starts acting takes a new incarnation, so its notices' versions are
//! above every earlier master's.

use crate::config::{Mutant, ProtocolConfig, Timing};
use crate::server::{Right, StoreTag};
use crate::store::{Stamp, StoreOp, StoreReply};
use crate::types::{Slot, Time};
use serde::{Deserialize, Serialize};

/// The right to act as the master, kept as slot `u16::MAX` (slots are below
/// 16384).
pub const MASTER_SLOT: Slot = Slot(u16::MAX);

/// A master process's hold on the lease.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeaseState {
    /// The lease, while held.
    pub held: Option<Right>,
    /// Another process's record: its stamp and when this one first saw it.
    pub watching: Option<(Stamp, Time)>,
    /// A command of ours is at the store.
    pub asking: bool,
}

impl LeaseState {
    /// Whether this process may act as the master at `now`.
    pub fn acting(&self, now: Time) -> bool {
        self.held.is_some_and(|r| now < r.trusted_until)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LeaseOutput {
    Store {
        tag: StoreTag,
        op: StoreOp,
    },
    /// Start acting (take a new incarnation, start the master).
    Act,
    /// Stop acting: the lease ran out or was lost.
    StandBy,
}

/// The lease's static part: the timing it shares with serving rights.
#[derive(Clone, Debug)]
pub struct Lease {
    pub timing: Timing,
    pub mutant: Option<Mutant>,
}

impl Lease {
    pub fn new(config: &ProtocolConfig) -> Lease {
        Lease { timing: config.timing.clone(), mutant: config.mutant }
    }

    /// How often [`Lease::tick`] is to run: renewals, and a standby's asks.
    pub fn interval(&self) -> u64 {
        self.timing.renew_interval()
    }

    /// Periodic: the holder renews (and stops acting once its trust has run
    /// out); a standby asks, with the stamp it has watched for a lease.
    pub fn tick(&self, st: &mut LeaseState, now: Time, out: &mut Vec<LeaseOutput>) {
        if st.held.is_some_and(|r| now >= r.trusted_until) {
            st.held = None;
            out.push(LeaseOutput::StandBy);
        }
        if st.asking {
            return;
        }
        st.asking = true;
        let lease = self.timing.lease;
        let (tag, op) = match st.held {
            Some(r) => (StoreTag::Renew { sent: now }, StoreOp::Renew { rights: vec![(MASTER_SLOT, r.epoch)], lease }),
            None => {
                let wait = match self.mutant {
                    Some(Mutant::LeaseSkipsWait) => 0,
                    _ => self.timing.takeover_wait(),
                };
                let stamp = st.watching.filter(|(_, seen)| now.since(*seen) >= wait).map(|(s, _)| s);
                (
                    StoreTag::Acquire { sent: now, more: false },
                    StoreOp::Acquire { slots: vec![(MASTER_SLOT, stamp)], lease },
                )
            }
        };
        out.push(LeaseOutput::Store { tag, op });
    }

    /// The store's answer to the command tagged `tag`.
    pub fn on_store(
        &self,
        st: &mut LeaseState,
        tag: StoreTag,
        reply: StoreReply,
        now: Time,
        out: &mut Vec<LeaseOutput>,
    ) {
        st.asking = false;
        let trusted = self.timing.trusted_lease();
        match (tag, reply) {
            (StoreTag::Acquire { sent, .. }, StoreReply::Acquired { granted, held }) => {
                if let Some((_, epoch)) = granted.into_iter().find(|(s, _)| *s == MASTER_SLOT) {
                    st.watching = None;
                    st.held = Some(Right { epoch, trusted_until: sent.plus(trusted) });
                    out.push(LeaseOutput::Act);
                } else if let Some((_, _, stamp)) = held.into_iter().find(|(s, ..)| *s == MASTER_SLOT) {
                    // A new stamp starts the wait again: the holder renewed.
                    if st.watching.is_none_or(|(seen, _)| seen != stamp) {
                        st.watching = Some((stamp, now));
                    }
                }
            }
            (StoreTag::Renew { sent }, StoreReply::Renewed { kept, lost }) => {
                let epoch = st.held.map(|r| r.epoch);
                if kept.iter().any(|(s, e)| *s == MASTER_SLOT && Some(*e) == epoch) {
                    if let Some(r) = st.held.as_mut() {
                        r.trusted_until = sent.plus(trusted);
                    }
                } else if lost.iter().any(|(s, e)| *s == MASTER_SLOT && Some(*e) == epoch) {
                    st.held = None;
                    out.push(LeaseOutput::StandBy);
                }
            }
            // A failed call: asked again at the next tick; a holder's trust
            // runs out meanwhile if the store stays away.
            _ => {}
        }
    }
}
