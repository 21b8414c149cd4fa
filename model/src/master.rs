//! The master (c1, c7, c19-c21): takes "X may be offline" reports, verifies
//! them by contacting X itself, marks X offline only when that contact
//! fails, tells every other server, re-checks offline servers periodically
//! and announces those that answer as online again. Soft state: after a
//! restart it rebuilds its view by probing.

use crate::config::{Mutant, ProtocolConfig};
use crate::messages::{Liveness, MasterMsg, Report};
use crate::topology::{Topology, TopologyChange};
use crate::types::{Node, ServerId, Slot, Time, Version};
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MasterTimer {
    /// The probe of this server went unanswered (c19).
    ProbeTimeout(ServerId),
    /// Time to re-check this offline server (c20).
    Reprobe(ServerId),
    /// Time to re-send the whole view.
    Sync,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MasterInput {
    /// (Re)start with an incarnation number larger than any before it,
    /// and the topology last persisted in the store, if any (a newer
    /// version than the configured one is continued from).
    Start {
        incarnation: u64,
        topology: Option<Arc<Topology>>,
    },
    /// An operator's change of the topology (issue 17): the master makes the
    /// next version and asks the runtime to persist it
    /// ([`MasterOutput::Persist`]); it is told to the servers once
    /// persisted.
    Change(TopologyChange),
    /// The runtime persisted (`ok`) the proposed topology `version`, or
    /// could not.
    Persisted {
        version: u64,
        ok: bool,
    },
    Report {
        from: Node,
        report: Report,
    },
    Timer(MasterTimer),
    /// The master's connection to this server was refused or closed: the
    /// process is not there to answer, so a probe of it outstanding has
    /// failed now rather than at its timeout (c19).
    Unreachable(ServerId),
}

/// Notable events, for logs and for the model checker's properties.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MasterEvent {
    MarkedOffline(ServerId, Version),
    MarkedOnline(ServerId, Version),
    /// A report was dismissed because the server answered the probe.
    ReportRefuted(ServerId),
    /// A new topology version is in force and sent to every server.
    TopologyChanged(u64),
    /// A change was refused, with the reason.
    ChangeRefused(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MasterOutput {
    Probe {
        to: ServerId,
        nonce: u64,
    },
    Send {
        to: ServerId,
        msg: MasterMsg,
    },
    SetTimer {
        timer: MasterTimer,
        at: Time,
    },
    CancelTimer(MasterTimer),
    Event(MasterEvent),
    /// Write this topology to the store (a restarted master continues from
    /// it), then answer [`MasterInput::Persisted`].
    Persist(Arc<Topology>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MasterState {
    pub version: Version,
    pub liveness: OrdMap<ServerId, Liveness>,
    /// Probes awaiting an answer: server -> nonce.
    pub probes: OrdMap<ServerId, u64>,
    pub next_nonce: u64,
    /// Until the first round of probes after a start has settled, the master
    /// does not broadcast its (still assumed) view.
    pub booting: bool,
    /// The topology in force (issue 17): the configured one until a change.
    pub topology: Arc<Topology>,
    /// A change made and not yet persisted.
    pub proposed: Option<Arc<Topology>>,
}

impl MasterState {
    pub fn offline(&self) -> OrdSet<ServerId> {
        self.liveness.iter().filter(|(_, l)| **l == Liveness::Offline).map(|(s, _)| *s).collect()
    }

    pub fn is_online(&self, s: ServerId) -> bool {
        self.liveness.get(&s) != Some(&Liveness::Offline)
    }

    /// The version of the master's view.
    pub fn version(&self) -> Version {
        self.version
    }
}

/// The master's static part: topology and protocol configuration.
#[derive(Clone, Debug)]
pub struct Master {
    pub topology: Arc<Topology>,
    pub config: ProtocolConfig,
}

impl Master {
    /// Who serves `slot` in the master's view: its owner while online,
    /// else the group's failover server (c1, c15).
    pub fn serving_server(&self, st: &MasterState, slot: Slot) -> Option<ServerId> {
        st.topology.serving_server(slot, |s| st.is_online(s))
    }

    pub fn new(topology: Arc<Topology>, config: ProtocolConfig) -> Master {
        Master { topology, config }
    }

    /// A master that has not started yet; feed it [`MasterInput::Start`].
    pub fn initial_state(&self) -> MasterState {
        MasterState {
            version: Version::default(),
            liveness: self.topology.servers().map(|s| (s, Liveness::Online)).collect(),
            probes: OrdMap::new(),
            next_nonce: 0,
            booting: true,
            topology: self.topology.clone(),
            proposed: None,
        }
    }

    pub fn step(&self, st: &mut MasterState, now: Time, input: MasterInput, out: &mut Vec<MasterOutput>) {
        let t = &self.config.timing;
        match input {
            MasterInput::Start { incarnation, topology } => {
                *st = self.initial_state();
                st.version = Version { incarnation, counter: 0 };
                if let Some(t) = topology.filter(|t| t.version() > st.topology.version()) {
                    st.topology = t;
                }
                // Soft state: rebuild the view by contacting every server.
                let servers: Vec<ServerId> = st.topology.servers().collect();
                for s in servers {
                    self.probe(st, s, now, out);
                }
                out.push(MasterOutput::SetTimer { timer: MasterTimer::Sync, at: now.plus(t.sync_interval) });
            }
            // A server removed from the topology (issue 17) is probed and
            // marked no more: its leaving is only confirmed.
            MasterInput::Report { from, report: Report::Leaving { server } }
                if from == Node::Server(server) && st.topology.is_removed(server) =>
            {
                let msg = MasterMsg::Notice { server, liveness: Liveness::Offline, version: st.version };
                out.push(MasterOutput::Send { to: server, msg });
            }
            MasterInput::Report { report: Report::MaybeOffline { server } | Report::BackOnline { server }, .. }
                if st.topology.is_removed(server) => {}
            MasterInput::Report { from, report } => match report {
                // c19: a report only starts a verification.
                Report::MaybeOffline { server } if st.is_online(server) => {
                    if self.config.has(Mutant::SkipVerification) {
                        self.mark(st, server, Liveness::Offline, now, out);
                    } else if !st.probes.contains_key(&server) {
                        self.probe(st, server, now, out);
                    }
                }
                // c14 -> c21: "X answered me" is verified the same way.
                Report::BackOnline { server } if !st.is_online(server) && !st.probes.contains_key(&server) => {
                    self.probe(st, server, now, out);
                }
                // A draining server of itself: its own word is the contact
                // c19 asks for. Marked offline (its peers route to the
                // failover servers, told that it leaves: it serves what it
                // has not released yet), and told so.
                Report::Leaving { server } if from == Node::Server(server) => {
                    if st.probes.remove(&server).is_some() {
                        out.push(MasterOutput::CancelTimer(MasterTimer::ProbeTimeout(server)));
                    }
                    if st.is_online(server) {
                        self.mark_as(st, server, Liveness::Offline, true, now, out);
                    } else {
                        let at = now.plus(t.reprobe_interval);
                        out.push(MasterOutput::SetTimer { timer: MasterTimer::Reprobe(server), at });
                        // c20
                    }
                    let msg = MasterMsg::Notice { server, liveness: Liveness::Offline, version: st.version };
                    out.push(MasterOutput::Send { to: server, msg });
                    self.finish_boot(st, out);
                }
                Report::ProbeAck { nonce } => {
                    let Node::Server(server) = from else { return };
                    if st.probes.get(&server) != Some(&nonce) {
                        return; // an answer to an older probe, or forged
                    }
                    st.probes.remove(&server);
                    out.push(MasterOutput::CancelTimer(MasterTimer::ProbeTimeout(server)));
                    if st.is_online(server) {
                        out.push(MasterOutput::Event(MasterEvent::ReportRefuted(server)));
                    } else {
                        self.mark(st, server, Liveness::Online, now, out); // c21
                    }
                    self.finish_boot(st, out);
                }
                _ => {}
            },
            MasterInput::Timer(MasterTimer::ProbeTimeout(server)) => {
                if st.probes.remove(&server).is_none() {
                    return; // answered meanwhile
                }
                self.probe_failed(st, server, now, out);
            }
            MasterInput::Unreachable(server) => {
                if st.probes.remove(&server).is_none() {
                    return; // no probe of it outstanding: nothing to conclude
                }
                out.push(MasterOutput::CancelTimer(MasterTimer::ProbeTimeout(server)));
                self.probe_failed(st, server, now, out);
            }
            MasterInput::Timer(MasterTimer::Reprobe(server)) => {
                if !st.is_online(server) && !st.probes.contains_key(&server) && !st.topology.is_removed(server) {
                    self.probe(st, server, now, out); // c20
                }
            }
            MasterInput::Change(change) => {
                if st.proposed.is_some() {
                    let why = "ERR another topology change is being persisted".to_string();
                    return out.push(MasterOutput::Event(MasterEvent::ChangeRefused(why)));
                }
                match st.topology.change(&change) {
                    Ok(t) => {
                        let t = Arc::new(t);
                        st.proposed = Some(t.clone());
                        out.push(MasterOutput::Persist(t));
                    }
                    Err(e) => out.push(MasterOutput::Event(MasterEvent::ChangeRefused(format!("ERR {e}")))),
                }
            }
            MasterInput::Persisted { version, ok } => {
                let Some(t) = st.proposed.take_if(|t| t.version() == version) else { return };
                if !ok {
                    let why = "ERR the store did not take the new topology".to_string();
                    return out.push(MasterOutput::Event(MasterEvent::ChangeRefused(why)));
                }
                // Every server of the old or the new version hears it: a
                // removed one hands its rights to the slots' new owners, a
                // new one learns what it owns.
                let old = std::mem::replace(&mut st.topology, t.clone());
                out.push(MasterOutput::Event(MasterEvent::TopologyChanged(version)));
                let to: std::collections::BTreeSet<ServerId> = old.servers().chain(t.servers()).collect();
                for s in to {
                    out.push(MasterOutput::Send { to: s, msg: MasterMsg::Topology(t.clone()) });
                }
            }
            MasterInput::Timer(MasterTimer::Sync) => {
                if !st.booting {
                    self.broadcast_view(st, out);
                }
                out.push(MasterOutput::SetTimer { timer: MasterTimer::Sync, at: now.plus(t.sync_interval) });
            }
        }
    }

    /// The probe of `server` went unanswered (timed out, or its connection
    /// was refused): c19 marks an online server offline; an offline one is
    /// re-checked later (c20).
    fn probe_failed(&self, st: &mut MasterState, server: ServerId, now: Time, out: &mut Vec<MasterOutput>) {
        if st.topology.is_removed(server) {
            // Removed meanwhile: nothing to mark, nothing to re-check.
        } else if st.is_online(server) {
            self.mark(st, server, Liveness::Offline, now, out); // c19
        } else {
            let at = now.plus(self.config.timing.reprobe_interval);
            out.push(MasterOutput::SetTimer { timer: MasterTimer::Reprobe(server), at });
            // c20
        }
        self.finish_boot(st, out);
    }

    fn probe(&self, st: &mut MasterState, server: ServerId, now: Time, out: &mut Vec<MasterOutput>) {
        st.next_nonce += 1;
        st.probes.insert(server, st.next_nonce);
        out.push(MasterOutput::Probe { to: server, nonce: st.next_nonce });
        let at = now.plus(self.config.timing.probe_timeout);
        out.push(MasterOutput::SetTimer { timer: MasterTimer::ProbeTimeout(server), at });
    }

    /// c19, c21: mark and tell every other server, with a new version.
    fn mark(&self, st: &mut MasterState, server: ServerId, liveness: Liveness, now: Time, out: &mut Vec<MasterOutput>) {
        self.mark_as(st, server, liveness, false, now, out)
    }

    /// [`Self::mark`]; `leaving`: offline on the server's own word, told as
    /// [`MasterMsg::Leaving`].
    fn mark_as(
        &self,
        st: &mut MasterState,
        server: ServerId,
        liveness: Liveness,
        leaving: bool,
        now: Time,
        out: &mut Vec<MasterOutput>,
    ) {
        st.liveness.insert(server, liveness);
        st.version.counter += 1;
        let version = st.version;
        out.push(MasterOutput::Event(match liveness {
            Liveness::Offline => MasterEvent::MarkedOffline(server, version),
            Liveness::Online => MasterEvent::MarkedOnline(server, version),
        }));
        for to in st.topology.servers().filter(|&s| s != server && st.is_online(s)) {
            let msg = match leaving {
                true => MasterMsg::Leaving { server, version },
                false => MasterMsg::Notice { server, liveness, version },
            };
            out.push(MasterOutput::Send { to, msg });
        }
        match liveness {
            Liveness::Offline => {
                let at = now.plus(self.config.timing.reprobe_interval);
                out.push(MasterOutput::SetTimer { timer: MasterTimer::Reprobe(server), at });
                // c20
            }
            // The server back online missed notices while it was offline:
            // it gets the whole view.
            Liveness::Online => {
                let msg = MasterMsg::View { version, offline: st.offline(), topology: self.changed_topology(st) };
                out.push(MasterOutput::Send { to: server, msg })
            }
        }
    }

    fn finish_boot(&self, st: &mut MasterState, out: &mut Vec<MasterOutput>) {
        if st.booting && st.probes.is_empty() {
            st.booting = false;
            st.version.counter += 1;
            self.broadcast_view(st, out);
        }
    }

    /// The topology for views: once it has changed from the configured one.
    fn changed_topology(&self, st: &MasterState) -> Option<Arc<Topology>> {
        (st.topology.version() > self.topology.version()).then(|| st.topology.clone())
    }

    /// The view to every online server, with the topology once it has
    /// changed (repairing a lost one, and telling a restarted server).
    fn broadcast_view(&self, st: &MasterState, out: &mut Vec<MasterOutput>) {
        let offline = st.offline();
        let topology = self.changed_topology(st);
        for to in st.topology.servers().filter(|s| !offline.contains(s)) {
            let msg = MasterMsg::View { version: st.version, offline: offline.clone(), topology: topology.clone() };
            out.push(MasterOutput::Send { to, msg });
        }
    }
}
