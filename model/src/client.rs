//! A client (c5, c9, c10-c14): routes each request to its slot's owner
//! (c11), retries R times (c12), then enters failover mode for that server,
//! tells the master and sends to the failover server (c10). While in
//! failover mode for less than T it goes straight to the failover server
//! (c13); after T it tries the owner again, leaving failover mode and telling
//! the master if that works, else going to the failover server (c14).

use crate::config::ProtocolConfig;
use crate::messages::Report;
use crate::topology::Topology;
use crate::types::{ClientId, ErrorKind, Op, OpResult, ReqId, ServerId, Time};
use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The client's mode for one server (c10, c13).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mode {
    Normal,
    /// In failover mode since this time (reset after a failed probe).
    Failover {
        since: Time,
    },
}

/// What an attempt is, which decides what its failure means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Attempt {
    /// To the owner, in normal mode (c10, c12).
    Owner,
    /// To the owner after T in failover mode (c14).
    Probe,
    /// To a failover server (c10, c13).
    Failover,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InFlight {
    pub op: Op,
    pub owner: ServerId,
    pub to: ServerId,
    pub attempt: Attempt,
    /// Failed sends to `to` so far.
    pub failures: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ClientTimer {
    /// No reply to request `seq` in time: a failed send.
    SendTimeout(u64),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ClientInput {
    /// Start an operation; `seq` must be new for this client.
    Invoke {
        seq: u64,
        op: Op,
    },
    /// A server answered request `seq`.
    Reply {
        seq: u64,
        from: ServerId,
        result: OpResult,
    },
    /// The runtime could not send request `seq` to `to` (refused, reset).
    SendFailed {
        seq: u64,
        to: ServerId,
    },
    Timer(ClientTimer),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ClientOutput {
    Send { to: ServerId, req: ReqId, op: Op },
    Complete { seq: u64, result: OpResult },
    ToMaster(Report),
    SetTimer { timer: ClientTimer, at: Time },
    CancelTimer(ClientTimer),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientState {
    /// Servers in failover mode; absent means normal.
    pub modes: OrdMap<ServerId, Mode>,
    pub inflight: OrdMap<u64, InFlight>,
}

impl ClientState {
    pub fn mode(&self, s: ServerId) -> Mode {
        self.modes.get(&s).copied().unwrap_or(Mode::Normal)
    }

    /// The servers this client is in failover mode for (c10).
    pub fn failover_servers(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.modes.keys().copied()
    }
}

#[derive(Clone, Debug)]
pub struct Client {
    pub id: ClientId,
    pub topology: Arc<Topology>,
    pub config: ProtocolConfig,
}

impl Client {
    pub fn new(id: ClientId, topology: Arc<Topology>, config: ProtocolConfig) -> Client {
        Client { id, topology, config }
    }

    /// The failover server for `owner`'s slot, among servers this client is
    /// not in failover mode for (c10).
    pub fn failover_server(&self, st: &ClientState, op: &Op) -> Option<ServerId> {
        let slot = self.topology.slot(op.key());
        self.topology.failover_server(slot, |s| st.mode(s) == Mode::Normal)
    }

    /// With every member of `op`'s group in failover mode, the one to probe
    /// rather than refuse (one may be back before its failover period
    /// ends): the owner if its failover mode began before `now`, else such
    /// a peer (c14, extended to the group). Members that failed at `now`
    /// itself are not asked again at once.
    fn probe_target(&self, st: &ClientState, op: &Op, now: Time) -> Option<ServerId> {
        let slot = self.topology.slot(op.key());
        self.topology.serving_server(slot, |s| matches!(st.mode(s), Mode::Failover { since } if since < now))
    }

    pub fn step(&self, st: &mut ClientState, now: Time, input: ClientInput, out: &mut Vec<ClientOutput>) {
        let t = &self.config.timing;
        match input {
            ClientInput::Invoke { seq, op } => {
                let owner = self.topology.owner(self.topology.slot(op.key())); // c11
                let (to, attempt) = match st.mode(owner) {
                    Mode::Normal => (Some(owner), Attempt::Owner), // c10
                    Mode::Failover { since } if now.since(since) < t.failover_period => {
                        match self.failover_server(st, &op) {
                            Some(peer) => (Some(peer), Attempt::Failover), // c13
                            // Every member in failover mode: probe one rather than
                            // refuse; if it fails too, `failed` finds no member.
                            None => (self.probe_target(st, &op, now), Attempt::Probe),
                        }
                    }
                    Mode::Failover { .. } => (Some(owner), Attempt::Probe), // c14
                };
                let Some(to) = to else {
                    return out.push(ClientOutput::Complete { seq, result: OpResult::Err(ErrorKind::Unavailable) });
                };
                st.inflight.insert(seq, InFlight { op, owner, to, attempt, failures: 0 });
                self.send(st, seq, now, out);
            }
            ClientInput::Reply { seq, from, result } => {
                let Some(f) = st.inflight.remove(&seq) else { return }; // late duplicate
                out.push(ClientOutput::CancelTimer(ClientTimer::SendTimeout(seq)));
                if f.attempt == Attempt::Probe && from == f.to {
                    // c14: a probed server answered (the owner, or a peer
                    // probed because none was in normal mode): leave
                    // failover mode for it, tell the master.
                    st.modes.remove(&from);
                    out.push(ClientOutput::ToMaster(Report::BackOnline { server: from }));
                }
                out.push(ClientOutput::Complete { seq, result });
            }
            ClientInput::SendFailed { seq, to } => {
                if st.inflight.get(&seq).is_some_and(|f| f.to == to) {
                    out.push(ClientOutput::CancelTimer(ClientTimer::SendTimeout(seq)));
                    self.failed(st, seq, now, out);
                }
            }
            ClientInput::Timer(ClientTimer::SendTimeout(seq)) => {
                if st.inflight.contains_key(&seq) {
                    self.failed(st, seq, now, out);
                }
            }
        }
    }

    fn send(&self, st: &ClientState, seq: u64, now: Time, out: &mut Vec<ClientOutput>) {
        let f = &st.inflight[&seq];
        let req = ReqId { client: self.id, seq };
        out.push(ClientOutput::Send { to: f.to, req, op: f.op.clone() });
        let at = now.plus(self.config.timing.send_timeout);
        out.push(ClientOutput::SetTimer { timer: ClientTimer::SendTimeout(seq), at });
    }

    fn failed(&self, st: &mut ClientState, seq: u64, now: Time, out: &mut Vec<ClientOutput>) {
        let f = &mut st.inflight[&seq];
        f.failures += 1;
        let (to, attempt) = (f.to, f.attempt);
        if attempt != Attempt::Probe && f.failures <= self.config.timing.retries {
            return self.send(st, seq, now, out); // c12: resend to the same server
        }
        // c10 (after R resends) and c14 (a failed probe): failover mode for
        // `to`, since now; tell the master, go to the failover server.
        st.modes.insert(to, Mode::Failover { since: now });
        if attempt != Attempt::Probe {
            out.push(ClientOutput::ToMaster(Report::MaybeOffline { server: to }));
        }
        let op = st.inflight[&seq].op.clone();
        match self.failover_server(st, &op) {
            Some(next) => {
                let f = &mut st.inflight[&seq];
                (f.to, f.attempt, f.failures) = (next, Attempt::Failover, 0);
                self.send(st, seq, now, out);
            }
            None => {
                st.inflight.remove(&seq);
                out.push(ClientOutput::Complete { seq, result: OpResult::Err(ErrorKind::Unavailable) });
            }
        }
    }
}
