//! Messages between roles, and the master's view as servers hold it.

use crate::types::{ReqId, ServerId, Version};
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};

/// Whether a server is marked online or offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Liveness {
    Online,
    Offline,
}

/// From the master to a server.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MasterMsg {
    /// "Are you there?" (c19, c20). Answered with [`Report::ProbeAck`].
    Probe { nonce: u64 },
    /// "Server X is offline" (c17, c19) or "online again" (c16, c21).
    Notice { server: ServerId, liveness: Liveness, version: Version },
    /// The master's whole view, re-sent periodically so that a lost notice
    /// is repaired; `offline` lists every server marked offline.
    /// `topology`: the one in force once it has changed (repairing a lost
    /// `Topology`, and telling a restarted server).
    View { version: Version, offline: OrdSet<ServerId>, topology: Option<std::sync::Arc<crate::topology::Topology>> },
    /// The topology in force (issue 17), sent when it changes and with each
    /// view once it has: a server takes it if newer than its own.
    Topology(std::sync::Arc<crate::topology::Topology>),
    /// "Server X is offline: it is leaving" (its own word, [`Report::Leaving`]):
    /// a notice of X offline at `version`, which also says that X still
    /// serves the rights it has not released yet, so a server may pass it
    /// the requests of those slots for a while (issue 17's drain: its
    /// slots' requests do not wait for their batch's release). Last, so that
    /// the wire numbers of the others stay.
    Leaving { server: ServerId, version: Version },
}

/// From a client or server to the master.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Report {
    /// Answer to [`MasterMsg::Probe`].
    ProbeAck { nonce: u64 },
    /// "Sending to X failed" (c10, c15).
    MaybeOffline { server: ServerId },
    /// "X answered again" (c14); a server says it of itself when it starts.
    BackOnline { server: ServerId },
    /// "I am leaving": a draining server of itself. It has handed its
    /// rights back (released them in the store) and wants its slots served
    /// by its group's failover servers at once; the master takes the
    /// server's own word as the contact c19 asks for.
    Leaving { server: ServerId },
}

/// A server's copy of the master's view: each server's liveness and the
/// version of the notice that set it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct View {
    entries: OrdMap<ServerId, (Liveness, Version)>,
}

impl View {
    /// Online unless a notice said otherwise.
    pub fn is_online(&self, s: ServerId) -> bool {
        !matches!(self.entries.get(&s), Some((Liveness::Offline, _)))
    }

    pub fn version_of(&self, s: ServerId) -> Version {
        self.entries.get(&s).map(|e| e.1).unwrap_or_default()
    }

    pub fn offline(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.entries.iter().filter(|(_, e)| e.0 == Liveness::Offline).map(|(s, _)| *s)
    }

    /// Applies one entry if `version` is newer than the one held (or always,
    /// when `ignore_versions`: a mutant). Returns whether liveness changed.
    pub fn apply(&mut self, s: ServerId, liveness: Liveness, version: Version, ignore_versions: bool) -> bool {
        let (old, held) = self.entries.get(&s).copied().unwrap_or((Liveness::Online, Version::default()));
        if version <= held && !ignore_versions {
            return false;
        }
        self.entries.insert(s, (liveness, version));
        old != liveness
    }
}

/// Identifies a request a server is handling, for replies and forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Origin {
    /// A request from a client connection; the token is the runtime's.
    Client(u64),
    /// A request forwarded by a peer: `op` is the peer's operation number
    /// in its run `incarnation`; the reply carries both back, so that it
    /// completes that request and no other.
    Peer { server: ServerId, incarnation: u64, op: u64 },
}

/// A request as it travels between servers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Forwarded {
    pub req: ReqId,
    pub op: crate::types::Op,
    pub hops: u8,
}
