//! Each role's driver: feeds a node one input through the core's own
//! transition (`Server::step`, `Master::step`, `Client::step`) and carries
//! its outputs out into the world (messages on channels, timers, the
//! history of completed operations), plus the clocks.

use super::config::*;
use super::model::ClusterModel;
use super::properties::{answers, Answer};
use super::world::*;
use failgroup_model::*;
use std::sync::Arc;

impl ClusterModel {
    pub fn new(cfg: CheckConfig) -> ClusterModel {
        // One slot per key keeps the state small: slot i belongs to server
        // i * servers / keys, so one key lives on s0.
        let spec = ClusterSpec::local(cfg.servers, cfg.groups, 7101, cfg.keys);
        let topology = Arc::new(spec.validate().expect("model topology"));
        let protocol = cfg.protocol();
        let servers = topology.servers().map(|s| Server::new(s, topology.clone(), protocol.clone())).collect();
        let clients =
            (0..cfg.clients).map(|c| Client::new(ClientId(c as u64 + 1), topology.clone(), protocol.clone())).collect();
        let keys = (0..cfg.keys)
            .map(|k| (0..).map(|i| format!("k{i}").into_bytes()).find(|key| topology.slot(key) == Slot(k)).unwrap())
            .collect();
        let master = Master::new(topology.clone(), protocol);
        ClusterModel { cfg, topology, servers, clients, master, keys }
    }

    /// The operation a client runs `i`-th: the configured commands in
    /// turn (see [`CheckConfig::commands`]), keys in turn, values unique to
    /// the client and the operation (`10 * (client + 1) + i`); the `i`-th
    /// operations of all clients go to the same key, so they race.
    pub fn script(&self, client: u16, i: u8) -> Op {
        let key = self.keys[i as usize % self.keys.len()].clone();
        let cmds = &self.cfg.commands;
        let cmd = cmds[(client as usize + i as usize) % cmds.len()];
        cmd.op(key, (client as u64 + 1) * 10 + i as u64)
    }

    pub(super) fn key_index(&self, key: &[u8]) -> usize {
        let key = super::spec::main_key(key);
        self.keys.iter().position(|k| k == key).expect("model key")
    }

    pub(super) fn node_mut<'a>(&self, st: &'a mut ClusterState, at: Addr) -> &'a mut ModelServer {
        match at {
            Addr::Server(s) => &mut st.servers[s.0 as usize],
            Addr::Twin(_) => &mut st.twin.as_mut().expect("a twin").1,
            _ => unreachable!("a server process"),
        }
    }

    pub(super) fn server_step(&self, st: &mut ClusterState, s: ServerId, input: ServerInput) {
        self.process_step(st, Addr::Server(s), input)
    }

    /// Feeds one input to the server process at `me` (a server, or the
    /// first process of a replaced one) and carries out its outputs.
    pub(super) fn process_step(&self, st: &mut ClusterState, me: Addr, input: ServerInput) {
        let s = match me {
            Addr::Server(s) | Addr::Twin(s) => s,
            _ => unreachable!("a server process"),
        };
        let node = self.node_mut(st, me);
        let now = Time(node.clock);
        let holder = Holder { server: s, incarnation: node.incarnation };
        let mut out = Vec::new();
        // A restart forgets the view; otherwise it never goes back.
        let restart = matches!(input, ServerInput::Start { .. });
        let before: Vec<Version> = self.topology.servers().map(|x| node.state.view.version_of(x)).collect();
        // Which request each reply to a peer answers (the checker's record).
        let ops_before = node.state.ops.clone();
        let arriving = match &input {
            ServerInput::Request { origin, fwd } => Some((*origin, fwd.req)),
            _ => None,
        };
        if let Some((origin, _)) = arriving {
            st.open.insert((me, origin));
        }
        let node = self.node_mut(st, me);
        self.servers[s.0 as usize].step(&mut node.state, now, input, &mut out);
        if !restart && self.topology.servers().zip(before).any(|(x, v)| node.state.view.version_of(x) < v) {
            st.seen.view_regressed = true;
        }
        for o in out {
            if let ServerOutput::Reply { to, .. } = &o {
                st.open.remove(&(me, *to));
            }
            match o {
                ServerOutput::Reply { to: Origin::Client(token), result } => {
                    let seq = token & 0xFFFF_FFFF;
                    st.send(me, Addr::Client((token >> 32) as u16), ModelMsg::Response { seq, result })
                }
                ServerOutput::Reply { to: to @ Origin::Peer { server, incarnation, op }, result } => {
                    let req = ops_before
                        .values()
                        .find(|p| p.origin == to)
                        .map(|p| p.fwd.req)
                        .or(arriving.filter(|(o, _)| *o == to).map(|(_, r)| r))
                        .expect("a reply answers a request this server had");
                    st.send(me, Addr::Server(server), ModelMsg::ForwardResponse { op, incarnation, result, req })
                }
                ServerOutput::Forward { to, op, incarnation: inc, fwd } => {
                    st.seen.forwarded = true;
                    let last_hop = fwd.hops >= self.servers[s.0 as usize].config.timing.max_hops;
                    if last_hop && !self.node_mut(st, me).state.view.is_online(to) {
                        st.seen.passed_to_leaving = true;
                    }
                    if self.earlier_run_waits(st, s, inc) {
                        st.seen.restart_while_forwarded = true;
                    }
                    st.send(me, Addr::Server(to), ModelMsg::Forward { op, incarnation: inc, fwd })
                }
                ServerOutput::Store { tag, op } => {
                    st.send(me, Addr::Store, ModelMsg::StoreCall { from: holder, tag, op })
                }
                ServerOutput::ToMaster(r) => st.send(me, Addr::Master, ModelMsg::Report(r)),
                o @ (ServerOutput::SetTimer { .. } | ServerOutput::CancelTimer(_)) => {
                    if matches!(o, ServerOutput::SetTimer { timer: ServerTimer::HandOver, .. }) {
                        st.seen.batched_hand_over = true;
                    }
                    self.node_mut(st, me).timers.carry_out(&o);
                }
                ServerOutput::Event(e) => match e {
                    ServerEvent::Served { for_other: true, .. } => st.seen.failover_served = true,
                    ServerEvent::Served { for_other: false, slot } if self.topology.owner(slot) != s => {
                        st.seen.moved_served = true
                    }
                    ServerEvent::Served { for_other: false, .. } if st.seen.failover_served => {
                        st.seen.owner_recovered = true
                    }
                    ServerEvent::HandedBack(_) => st.seen.handed_back = true,
                    ServerEvent::NoticeApplied(..) => st.seen.notice_applied = true,
                    _ => {}
                },
            }
        }
    }

    /// Whether a request an earlier run of `s` forwarded (not run `inc`)
    /// still waits at a peer or on its way to or from one.
    pub(super) fn earlier_run_waits(&self, st: &ClusterState, s: ServerId, inc: u64) -> bool {
        let waiting = st.servers.iter().any(|n| {
            n.state.ops.values().any(
                |p| matches!(p.origin, Origin::Peer { server, incarnation, .. } if server == s && incarnation != inc),
            )
        });
        let ours = |a: &Addr| matches!(a, Addr::Server(x) | Addr::Twin(x) if *x == s);
        let travelling = st.net.iter().any(|((from, to), chan)| {
            chan.iter().any(|(_, m)| match m {
                ModelMsg::Forward { incarnation, .. } => ours(from) && *incarnation != inc,
                ModelMsg::ForwardResponse { incarnation, .. } => ours(to) && *incarnation != inc,
                _ => false,
            })
        });
        waiting || travelling
    }

    /// The lease holder of master process `i` as the store knows it.
    fn lease_holder(st: &ClusterState, i: u8) -> Holder {
        Holder { server: ServerId(u16::MAX - 1 - i as u16), incarnation: st.masters[i as usize].run }
    }

    /// Master process `i`'s lease tick: it renews or asks (the store call
    /// taken at once, on its own connection), and acts or stands by.
    pub(super) fn lease_step(&self, st: &mut ClusterState, i: u8) {
        let lease = Lease::new(&self.cfg.protocol());
        let now = Time(st.now);
        let mut out = Vec::new();
        let p = &mut st.masters[i as usize];
        p.next_tick = st.now + lease.interval();
        lease.tick(&mut p.lease, now, &mut out);
        while let Some(o) = out.pop() {
            match o {
                LeaseOutput::Store { tag, op } => {
                    let holder = Self::lease_holder(st, i);
                    let reply = st.store.execute(holder, op, Time(st.now + st.store_ahead));
                    lease.on_store(&mut st.masters[i as usize].lease, tag, reply, now, &mut out);
                }
                LeaseOutput::Act => {
                    if st.incarnation > 0 {
                        st.seen.took_over = true;
                    }
                    st.acting = Some(i);
                    st.incarnation += 1;
                    st.master = Some(self.master.initial_state());
                    let (incarnation, topology) = (st.incarnation, st.saved_topology.clone());
                    self.master_step(st, MasterInput::Start { incarnation, topology });
                }
                LeaseOutput::StandBy => self.stand_down(st, i),
            }
        }
        let p = &mut st.masters[i as usize];
        if let Some(r) = p.lease.held {
            p.next_tick = p.next_tick.min(r.trusted_until.0);
        }
    }

    /// Master process `i` stops acting: its protocol state is dropped, its
    /// messages in flight go on.
    pub(super) fn stand_down(&self, st: &mut ClusterState, i: u8) {
        if st.acting != Some(i) {
            return;
        }
        st.acting = None;
        st.master = None;
        st.master_timers.clear();
        st.disconnect(Addr::Master);
        st.retire_master_channels();
    }

    pub(super) fn master_step(&self, st: &mut ClusterState, input: MasterInput) {
        // With standbys, only while the acting process's lease is trusted.
        if let Some(i) = st.acting.filter(|i| !st.masters[*i as usize].lease.acting(Time(st.now))) {
            self.stand_down(st, i);
        }
        let Some(mut mst) = st.master.take() else { return };
        let mut out = Vec::new();
        self.master.step(&mut mst, Time(st.now), input.clone(), &mut out);
        st.master = Some(mst);
        let mut refused = Vec::new();
        let mut persisted = None;
        for o in out {
            match o {
                // A crashed server's port refuses the connection the probe
                // would go on: the master learns it at once.
                MasterOutput::Probe { to, .. } if st.servers[to.0 as usize].status == ProcStatus::Crashed => {
                    st.seen.probe_answered.remove(&to);
                    refused.push(to);
                }
                MasterOutput::Probe { to, nonce } => {
                    st.seen.probe_answered.remove(&to);
                    st.send(Addr::Master, Addr::Server(to), ModelMsg::Master(MasterMsg::Probe { nonce }))
                }
                MasterOutput::Send { to, msg } => st.send(Addr::Master, Addr::Server(to), ModelMsg::Master(msg)),
                o @ (MasterOutput::SetTimer { .. } | MasterOutput::CancelTimer(_)) => {
                    st.master_timers.carry_out(&o);
                }
                MasterOutput::Event(MasterEvent::MarkedOffline(s, _)) => {
                    if st.seen.took_over {
                        st.seen.failed_over_after_takeover = true;
                    }
                    // c19: only on the master's own probe of s failing
                    // (timed out, or refused), and never when s answered it.
                    let own_probe = matches!(input, MasterInput::Timer(MasterTimer::ProbeTimeout(p)) | MasterInput::Unreachable(p) if p == s);
                    // Or on s's own word that it leaves (a drain), which
                    // only s sends.
                    let own_word = matches!(&input, MasterInput::Report { from: Node::Server(p), report: Report::Leaving { server } } if *p == s && *server == s);
                    if !own_word && (!own_probe || st.seen.probe_answered.contains(&s)) {
                        st.seen.unverified_offline = true;
                    }
                    st.seen.marked_offline = true;
                }
                MasterOutput::Event(_) => {}
                // The runtime writes it to the store before going on.
                MasterOutput::Persist(t) => {
                    persisted = Some(t.version());
                    st.saved_topology = Some(t);
                }
            }
        }
        if let Some(version) = persisted {
            self.master_step(st, MasterInput::Persisted { version, ok: true });
        }
        for to in refused {
            self.master_step(st, MasterInput::Unreachable(to));
        }
    }

    pub(super) fn client_step(&self, st: &mut ClusterState, c: u16, input: ClientInput) {
        let node = &mut st.clients[c as usize];
        let mut out = Vec::new();
        self.clients[c as usize].step(&mut node.state, Time(st.now), input, &mut out);
        for o in out {
            match o {
                ClientOutput::Send { to, req, op } => {
                    st.send(Addr::Client(c), Addr::Server(to), ModelMsg::Request { req, op })
                }
                ClientOutput::ToMaster(r) => st.send(Addr::Client(c), Addr::Master, ModelMsg::Report(r)),
                o @ (ClientOutput::SetTimer { .. } | ClientOutput::CancelTimer(_)) => {
                    st.clients[c as usize].timers.carry_out(&o);
                }
                ClientOutput::Complete { seq, result } => self.complete(st, c, seq, result),
            }
        }
    }

    pub(super) fn complete(&self, st: &mut ClusterState, c: u16, seq: u64, result: OpResult) {
        let node = &mut st.clients[c as usize];
        let Some((cur, op)) = node.current.clone() else { return };
        if cur != seq {
            return;
        }
        node.current = None;
        let k = self.key_index(op.key());
        match answers(&op, &result) {
            Answer::Definite => {}
            // An error: the effect is unknown, so the operation stays open
            // in the history and this client stops.
            Answer::Unknown => {
                node.failed = true;
                return;
            }
            // A result of another kind than the operation's answers some
            // other request (hole 1).
            Answer::Mismatch => {
                st.seen.mismatched_reply = true;
                node.failed = true;
                return;
            }
        }
        if let (Op::Get(_), OpResult::Value(Some(v))) = (&op, &result) {
            let writer = std::str::from_utf8(v).ok().and_then(|v| v.parse::<u64>().ok()).map(|v| v / 10);
            if writer.is_some_and(|w| w != c as u64 + 1) {
                st.seen.read_other_write = true;
            }
        }
        node.completed += 1;
        st.testers[k].ret(c, &result);
    }

    pub(super) fn deliver(&self, st: &mut ClusterState, env: Envelope) {
        match (env.to, env.msg) {
            (Addr::Store, ModelMsg::StoreCall { from: holder, tag, op }) => {
                let fence = match &op {
                    StoreOp::Write { slot, fence: Some(epoch), req, .. } if !st.store.applied.contains_key(req) => {
                        Some((*slot, *epoch))
                    }
                    StoreOp::Atomic { slot, fence: Some(epoch), req, ops }
                        if ops.iter().any(Op::is_write) && !st.store.applied.contains_key(req) =>
                    {
                        Some((*slot, *epoch))
                    }
                    _ => None,
                };
                let store_now = Time(st.now + st.store_ahead);
                let reply = st.store.execute(holder, op, store_now);
                // A write fenced by a right takes effect only while that
                // right is the slot's current one.
                if let (Some((slot, epoch)), StoreReply::Written { .. } | StoreReply::Atomic { .. }) = (fence, &reply) {
                    if !st.store.rights.get(&slot).is_some_and(|r| r.held_by(holder, epoch)) {
                        st.seen.deposed_write = true;
                    }
                }
                // The answer goes to the process that asked, if it still runs.
                let s = holder.server.0 as usize;
                let to =
                    if st.servers[s].incarnation == holder.incarnation && st.servers[s].status != ProcStatus::Crashed {
                        Some(Addr::Server(holder.server))
                    } else if st
                        .twin
                        .as_ref()
                        .is_some_and(|(t, n)| *t == holder.server && n.incarnation == holder.incarnation)
                    {
                        Some(Addr::Twin(holder.server))
                    } else {
                        None
                    };
                if let Some(to) = to {
                    st.send(Addr::Store, to, ModelMsg::StoreAnswer { tag, reply });
                }
            }
            (Addr::Twin(_), ModelMsg::StoreAnswer { tag, reply }) => {
                self.process_step(st, env.to, ServerInput::Store { tag, reply });
            }
            (Addr::Server(s), msg) if st.servers[s.0 as usize].status == ProcStatus::Crashed => {
                // Connection refused: the sender learns at once.
                match (env.from, msg) {
                    (Addr::Client(c), ModelMsg::Request { req, .. }) => {
                        self.client_step(st, c, ClientInput::SendFailed { seq: req.seq, to: s })
                    }
                    (Addr::Server(f), ModelMsg::Forward { op, incarnation, .. })
                        if st.servers[f.0 as usize].status == ProcStatus::Up
                            && st.servers[f.0 as usize].incarnation == incarnation =>
                    {
                        self.server_step(st, f, ServerInput::ForwardFailed { op })
                    }
                    _ => {}
                }
            }
            (Addr::Server(s), ModelMsg::ForwardResponse { op, incarnation, result, req }) => {
                let (Addr::Server(from) | Addr::Twin(from)) = env.from else { return };
                // Hole 1: the reply may complete only the request it answers.
                let waiting = st.servers[s.0 as usize].state.ops.get(&op).map(|p| p.fwd.req);
                self.server_step(st, s, ServerInput::ForwardReply { from, incarnation, op, result });
                if waiting.is_some_and(|w| w != req && !st.servers[s.0 as usize].state.ops.contains_key(&op)) {
                    st.seen.mismatched_reply = true;
                }
            }
            (Addr::Server(s), msg) => {
                let input = match (env.from, msg) {
                    (Addr::Client(c), ModelMsg::Request { req, op }) => {
                        let origin = Origin::Client(((c as u64) << 32) | req.seq);
                        ServerInput::Request { origin, fwd: Forwarded { req, op, hops: 0 } }
                    }
                    (Addr::Server(f) | Addr::Twin(f), ModelMsg::Forward { op, incarnation, fwd }) => {
                        ServerInput::Request { origin: Origin::Peer { server: f, incarnation, op }, fwd }
                    }
                    (_, ModelMsg::Master(m)) => ServerInput::Master(m),
                    (_, ModelMsg::StoreAnswer { tag, reply }) => ServerInput::Store { tag, reply },
                    _ => return,
                };
                self.server_step(st, s, input);
            }
            (Addr::Client(c), ModelMsg::Response { seq, result }) => {
                let (Addr::Server(from) | Addr::Twin(from)) = env.from else { return };
                self.client_step(st, c, ClientInput::Reply { seq, from, result });
            }
            (Addr::Master, ModelMsg::Report(report)) => {
                let from = match env.from {
                    Addr::Server(s) => Node::Server(s),
                    Addr::Client(c) => Node::Client(ClientId(c as u64 + 1)),
                    _ => return,
                };
                if let (Node::Server(s), Report::ProbeAck { nonce }) = (from, &report) {
                    if st.master.as_ref().is_some_and(|m| m.probes.get(&s) == Some(nonce)) {
                        st.seen.probe_answered.insert(s);
                    }
                }
                self.master_step(st, MasterInput::Report { from, report });
            }
            _ => {}
        }
    }
}
