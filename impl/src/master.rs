//! The master process: an event loop around the core's [`Master`]. It
//! connects to every server (probes and notices travel on those
//! connections, so a probe answered is the server itself answering) and
//! accepts reports from servers and clients, and status requests.
//!
//! Several master processes may run (`standby_masters`): each contends for
//! the lease in the store through the core's [`Lease`]; the one holding it
//! acts, the others answer status and topology requests and wait.

use crate::config::Config;
use crate::net::wire::{ClusterStatus, Msg, Peer, ServerStatus};
use crate::net::{Clock, Endpoint, Proto, Timers};
use crate::node_error::NodeError;
use crate::store::{BatchStore, Identity};
use failgroup_model::{
    ClusterSpec, Holder, Lease, LeaseOutput, LeaseState, Master, MasterEvent, MasterInput, MasterMsg, MasterOutput,
    MasterState, MasterTimer, Node, ServerId, Slot, StoreOp, StoreReply, StoreTag, Time, Topology, TopologyChange,
    MASTER_SLOT,
};
use mio::{Events, Token};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct MasterNode {
    cfg: Config,
    core: Master,
    st: MasterState,
    clock: Clock,
    /// The poll, the listener and every connection.
    net: Endpoint,
    /// Our connection to each server.
    to_server: HashMap<ServerId, Token>,
    timers: Timers<MasterTimer>,
    failovers: HashMap<ServerId, u64>,
    stop: Arc<AtomicBool>,
    /// The store, where the topology is persisted (issue 17).
    store: Box<dyn BatchStore + Send>,
    /// The outcome of the last topology change asked for.
    changed: Option<Result<u64, String>>,
    /// The lease to act: while held, this process is the master.
    lease: LeaseState,
    lease_core: Lease,
    /// When the lease is next renewed, or asked for.
    next_lease: Time,
    /// This process as the store knows lease holders.
    me: Identity,
    /// Started the core (holds the lease).
    acting: bool,
    /// What its metrics thread shows (`[metrics] master`), when last
    /// copied, and the counts behind it.
    published: Arc<std::sync::Mutex<crate::metrics::Published>>,
    published_at: std::time::Instant,
    /// Where the dashboard asks for the view and finds it.
    board: crate::metrics::dashboard::Board,
    probes: u64,
    notices: u64,
    marked_online: u64,
    topology_changes: u64,
}

impl MasterNode {
    /// `listen`: a standby's address (else the config's `master`).
    pub fn start(cfg: Config, listen: Option<String>, stop: Arc<AtomicBool>) -> Result<MasterNode, NodeError> {
        let addr = listen.unwrap_or_else(|| cfg.file.master.clone());
        let mut net = Endpoint::bind(&addr, 1)?;
        if let Some(tls) = cfg.file.tls.as_ref().filter(|t| t.nodes) {
            net.set_node_tls(crate::net::tls::node_tls(tls, &cfg.dir)?);
        }
        let core = Master::new(Arc::new(cfg.topology.clone()), cfg.protocol());
        let st = core.initial_state();
        // Incarnations must grow across restarts: the store counts them (a
        // wall clock may step back). A master of another mode or topology
        // than the store's cluster is refused.
        let mut store = cfg.open_store()?;
        store.check_mark(&cfg.mark(), false)?;
        // The topology last persisted, continued from if newer.
        let saved = match store.load_topology()? {
            Some((version, text)) => Some(Arc::new(saved_topology(version, &text)?)),
            None => None,
        };
        let mut st = st;
        if let Some(t) = saved.filter(|t| t.version() > st.topology.version()) {
            st.topology = t;
        }
        // Every master process holds the lease as "(master)", told apart by
        // a random incarnation.
        let me = Identity::new(
            Holder { server: ServerId(0), incarnation: crate::util::random_u64() },
            vec![LEASE_HOLDER.into()],
            cfg.file.mode,
        );
        let lease_core = Lease::new(&cfg.protocol());
        let mut node = MasterNode {
            lease: LeaseState::default(),
            lease_core,
            next_lease: Time(0),
            me,
            acting: false,
            cfg,
            core,
            st,
            clock: Clock::new(),
            net,
            to_server: HashMap::new(),
            timers: Timers::new(),
            failovers: HashMap::new(),
            stop,
            store,
            changed: None,
            published: Arc::default(),
            published_at: std::time::Instant::now(),
            board: Default::default(),
            probes: 0,
            notices: 0,
            marked_online: 0,
            topology_changes: 0,
        };
        let version = node.st.topology.version();
        tracing::info!(%addr, topology_version = version, "master listening; asking for the lease");
        // Its metrics: the configured master's, or this standby's.
        let metrics = &node.cfg.file.metrics;
        let at = if addr == node.cfg.file.master {
            metrics.master.clone()
        } else {
            metrics.standby_masters.get(&addr).cloned()
        };
        // A scrape before the loop's first copy sees the counts at zero,
        // not an empty text.
        node.publish();
        if let Some(at) = at {
            let servers = node.cfg.file.metrics.servers.clone();
            let board = crate::metrics::dashboard::Dashboard::new(node.board.clone(), servers);
            let bound = crate::metrics::serve(&at, node.published.clone(), Some(board))
                .map_err(NodeError::os("metrics address"))?;
            tracing::info!("metrics on http://{bound}/metrics, the dashboard on http://{bound}/");
        }
        node.lease_tick();
        Ok(node)
    }

    /// Renews the lease, or asks for it; acts or stands by on the answer.
    fn lease_tick(&mut self) {
        let now = self.clock.now();
        self.next_lease = now.plus(self.lease_core.interval());
        let mut out = Vec::new();
        self.lease_core.tick(&mut self.lease, now, &mut out);
        self.carry_lease(out);
        // Checked again when the trust runs out, whatever the interval.
        if let Some(r) = self.lease.held {
            self.next_lease = Time(self.next_lease.0.min(r.trusted_until.0));
        }
    }

    fn carry_lease(&mut self, out: Vec<LeaseOutput>) {
        for o in out {
            match o {
                LeaseOutput::Store { tag, op } => {
                    let reply = self.store.run_batch(&self.me, &[(tag, op)]).pop();
                    let reply = reply.unwrap_or_else(|| StoreReply::Failed("no reply".into()));
                    if let StoreReply::Failed(why) = &reply {
                        tracing::warn!(%why, "the lease's store call failed");
                    }
                    let mut more = Vec::new();
                    self.lease_core.on_store(&mut self.lease, tag, reply, self.clock.now(), &mut more);
                    self.carry_lease(more);
                }
                LeaseOutput::Act => self.act(),
                LeaseOutput::StandBy => self.stand_by(),
            }
        }
    }

    /// The lease is ours: start the core with a new incarnation (its
    /// notices' versions are above every earlier master's) from the
    /// topology last persisted.
    fn act(&mut self) {
        let incarnation = match self.store.next_master_incarnation() {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "no incarnation from the store; standing by");
                return self.release_lease();
            }
        };
        let saved = match self.store.load_topology() {
            Ok(Some((version, text))) => match saved_topology(version, &text) {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    tracing::error!(error = %e, "standing by");
                    return self.release_lease();
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "the topology could not be read; standing by");
                return self.release_lease();
            }
        };
        self.acting = true;
        tracing::info!(incarnation, "lease taken: acting as the master");
        self.step(MasterInput::Start { incarnation, topology: saved });
    }

    /// The lease ran out or was lost: stop acting at once (another master
    /// may take over), keep the topology for status requests.
    fn stand_by(&mut self) {
        if !self.acting {
            return;
        }
        self.acting = false;
        tracing::warn!("lease lost: standing by");
        let topology = self.st.topology.clone();
        self.st = self.core.initial_state();
        self.st.topology = topology;
        self.timers = Timers::new();
        for tok in self.to_server.drain().map(|(_, t)| t) {
            if let Some(c) = self.net.conns.get_mut(&tok) {
                c.dead = true;
            }
        }
    }

    /// Hands the lease back (a clean stop): a standby takes it at once.
    fn release_lease(&mut self) {
        self.acting = false;
        if let Some(r) = self.lease.held.take() {
            let op = StoreOp::Release { rights: vec![(MASTER_SLOT, r.epoch)] };
            let _ = self.store.run_batch(&self.me, &[(StoreTag::Release, op)]);
        }
    }

    pub fn run(mut self) -> Result<(), NodeError> {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::Relaxed) {
            let now = self.clock.now();
            let lease_in = self.next_lease.0.saturating_sub(now.0);
            let wait = self.timers.wait(now).unwrap_or(1000).min(1000).min(lease_in);
            self.net.wait(&mut events, Duration::from_millis(wait)).map_err(NodeError::os("poll"))?;
            for ev in events.iter() {
                match ev.token() {
                    Endpoint::LISTENER => {
                        self.net.accept();
                    }
                    tok => self.on_readiness(tok),
                }
            }
            let now = self.clock.now();
            if now >= self.next_lease {
                self.lease_tick();
            }
            while let Some(timer) = self.timers.pop_due(now) {
                self.step(MasterInput::Timer(timer));
            }
            self.housekeeping();
            if self.published_at.elapsed() >= Duration::from_millis(250) {
                self.publish();
            }
        }
        tracing::info!("master shutting down");
        self.release_lease();
        Ok(())
    }

    fn step(&mut self, input: MasterInput) {
        // Only while the lease is trusted: past it, another master may act.
        if !self.lease.acting(self.clock.now()) {
            self.stand_by();
        }
        if !self.acting {
            return;
        }
        let mut out = Vec::new();
        self.core.step(&mut self.st, self.clock.now(), input, &mut out);
        for o in out {
            match o {
                MasterOutput::Probe { to, nonce } => {
                    self.probes += 1;
                    self.send(to, MasterMsg::Probe { nonce })
                }
                MasterOutput::Send { to, msg } => {
                    self.notices += u64::from(matches!(msg, MasterMsg::Notice { .. } | MasterMsg::Leaving { .. }));
                    self.send(to, msg)
                }
                MasterOutput::SetTimer { timer, at } => self.timers.set(timer, at),
                MasterOutput::CancelTimer(timer) => self.timers.cancel(timer),
                MasterOutput::Event(e) => self.on_event(e),
                MasterOutput::Persist(t) => {
                    let text = toml::to_string(&t.spec()).expect("a cluster spec has a TOML form");
                    let ok = match self.store.save_topology(t.version(), text.as_bytes()) {
                        Ok(saved) => saved,
                        Err(e) => {
                            tracing::error!(error = %e, version = t.version(), "the topology could not be persisted");
                            false
                        }
                    };
                    self.step(MasterInput::Persisted { version: t.version(), ok });
                }
            }
        }
    }

    fn on_event(&mut self, e: MasterEvent) {
        let topo = self.st.topology.clone();
        match e {
            MasterEvent::MarkedOffline(s, v) => {
                *self.failovers.entry(s).or_default() += 1;
                tracing::warn!(server = topo.name(s), version = %v, "marked offline; notice sent");
            }
            MasterEvent::MarkedOnline(s, v) => {
                self.marked_online += 1;
                tracing::info!(server = topo.name(s), version = %v, "marked online; notice sent")
            }
            MasterEvent::ReportRefuted(s) => tracing::debug!(server = topo.name(s), "probe answered"),
            MasterEvent::TopologyChanged(v) => {
                self.topology_changes += 1;
                tracing::info!(version = v, "topology changed; sent to every server");
                self.changed = Some(Ok(v));
            }
            MasterEvent::ChangeRefused(why) => {
                tracing::warn!(%why, "topology change refused");
                self.changed = Some(Err(why));
            }
        }
    }

    fn send(&mut self, to: ServerId, msg: MasterMsg) {
        if !self.to_server.get(&to).is_some_and(|t| self.net.conns.contains_key(t)) {
            let addr = self.st.topology.addr(to).to_string();
            let Some(tok) = self.net.open(&addr, Peer::Master, self.cfg.file.secret.as_deref()) else {
                // Not even a connection attempt (the address does not
                // resolve, no sockets left): the probe outstanding fails
                // at its timeout, as for a silent host.
                return;
            };
            self.to_server.insert(to, tok);
        }
        if let Some(c) = self.net.conns.get_mut(&self.to_server[&to]) {
            c.send(&Msg::Master(msg));
        }
    }

    fn on_readiness(&mut self, tok: Token) {
        let Some(c) = self.net.ready(tok) else { return };
        if c.proto == Proto::Unknown && !c.rbuf.is_empty() && c.rbuf[0] != 0 {
            // RESP: the master answers INFO and PING (redis-cli, monitoring).
            c.proto = Proto::Resp;
        }
        if c.proto == Proto::Resp {
            return self.resp(tok);
        }
        if c.proto == Proto::Unknown && c.rbuf.len() >= 4 {
            if c.take_preamble() {
                c.proto = Proto::Node { peer: None };
            } else {
                c.dead = true;
                return;
            }
        }
        let outbound = self.to_server.iter().find(|(_, t)| **t == tok).map(|(s, _)| *s);
        let max = self.cfg.file.limits.max_frame;
        loop {
            let Some(c) = self.net.conns.get_mut(&tok) else { return };
            let Proto::Node { peer } = c.proto else { return };
            let Some(msg) = c.next_msg(max) else { return };
            // On our own connection to a server, what comes back is that server's.
            let from = match (outbound, peer) {
                (Some(s), _) => Some(Node::Server(s)),
                (None, Some(Peer::Server(s))) => Some(Node::Server(s)),
                (None, Some(Peer::Client(c))) => Some(Node::Client(c)),
                _ => None,
            };
            match (msg, from) {
                (Msg::Report(report), Some(from)) => self.step(MasterInput::Report { from, report }),
                (Msg::Welcome, _) if outbound.is_some() => {}
                (Msg::Refused(why), _) if outbound.is_some() => {
                    tracing::error!(peer = %c.addr, %why, "refused by a server");
                    c.dead = true;
                }
                (Msg::Hello { from, secret }, None) if peer.is_none() => {
                    let channel = c.channel();
                    if let Err(why) = self.cfg.admit(&self.st.topology, from, secret.as_deref(), c.addr.ip(), channel) {
                        tracing::warn!(peer = %c.addr, ?from, %why, "node hello refused");
                        c.send(&Msg::Refused(why.to_string()));
                        c.closing = true;
                        return;
                    }
                    c.proto = Proto::Node { peer: Some(from) };
                    c.send(&Msg::Welcome);
                }
                (Msg::StatusRequest, _) if peer.is_some() => {
                    let status = self.status();
                    let c = self.net.conns.get_mut(&tok).expect("connection");
                    c.send(&Msg::Status(Box::new(status)));
                }
                (Msg::InfoRequest, _) if peer.is_some() => {
                    c.send(&Msg::Info(Box::new(self.cfg.cluster_info(&self.st.topology))));
                }
                (Msg::Change(_), _) if peer == Some(Peer::Admin) && !self.acting => {
                    c.send(&Msg::Changed(Err("ERR this master stands by; ask the acting one".into())));
                }
                (Msg::Change(TopologyChange::AddServer { addr, .. }), _)
                    if peer == Some(Peer::Admin)
                        && (addr == self.cfg.file.master || self.cfg.file.standby_masters.contains(&addr)) =>
                {
                    c.send(&Msg::Changed(Err(format!("ERR {addr} is a master's address"))));
                }
                (Msg::Change(change), _) if peer == Some(Peer::Admin) => {
                    tracing::info!(%change, "topology change asked for");
                    self.changed = None;
                    self.step(MasterInput::Change(change));
                    let answer = self.changed.take().unwrap_or_else(|| Err("ERR no outcome".into()));
                    if let Some(c) = self.net.conns.get_mut(&tok) {
                        c.send(&Msg::Changed(answer));
                    }
                }
                (m, _) => {
                    tracing::warn!(peer = %c.addr, msg = ?m, "unexpected message; closing");
                    c.dead = true;
                    return;
                }
            }
        }
    }

    /// The view for `failgroup status`, with the rights the store records.
    pub fn status(&mut self) -> ClusterStatus {
        let holders = match self.cfg.file.mode {
            failgroup_model::Mode::Linearizable => match self.store.right_holders() {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "status: the serving rights could not be read");
                    None
                }
            },
            failgroup_model::Mode::Available => None,
        };
        let topo = &self.st.topology;
        let holder_of = |slot: u16| -> Option<&str> {
            let h = holders.as_ref()?;
            h.binary_search_by_key(&slot, |r| r.0).ok().map(|i| &h[i]).filter(|r| !r.2).map(|r| r.1.as_str())
        };
        let servers = topo
            .servers()
            .map(|s| {
                let mut serves: Vec<(u16, u16)> = Vec::new();
                for slot in 0..topo.slot_count() {
                    if self.core.serving_server(&self.st, Slot(slot)) == Some(s) {
                        match serves.last_mut() {
                            Some(r) if r.1 + 1 == slot => r.1 = slot,
                            _ => serves.push((slot, slot)),
                        }
                    }
                }
                let name = topo.name(s);
                let rights = holders.as_ref().map(|h| h.iter().filter(|r| !r.2 && r.1 == name).count() as u32);
                ServerStatus {
                    rights,
                    name: topo.name(s).to_string(),
                    addr: topo.addr(s).to_string(),
                    group: topo.group_name(s).to_string(),
                    online: self.st.is_online(s),
                    serves,
                    failovers: self.failovers.get(&s).copied().unwrap_or(0),
                }
            })
            .collect();
        let pending_slots = holders.as_ref().map(|_| {
            (0..topo.slot_count())
                .filter(|&slot| {
                    let serving = self.core.serving_server(&self.st, Slot(slot)).map(|s| topo.name(s));
                    serving.is_none() || serving != holder_of(slot)
                })
                .count() as u32
        });
        ClusterStatus {
            mode: self.cfg.file.mode.to_string(),
            view_version: self.st.version().to_string(),
            servers,
            topology_version: topo.version(),
            pending_slots,
            acting: self.acting,
        }
    }

    fn housekeeping(&mut self) {
        let mut dead = Vec::new();
        let mut refused = Vec::new();
        for (tok, c) in self.net.conns.iter_mut() {
            if !c.wbuf.is_empty() {
                c.flush();
            }
            let timeout = Duration::from_millis(self.cfg.file.timing.probe_timeout);
            if c.wbuf.len() > self.cfg.file.limits.max_output_buffer || (c.connecting && c.created.elapsed() > timeout)
            {
                c.dead = true;
            }
            if c.dead {
                dead.push(*tok);
                if c.connecting {
                    refused.push(*tok);
                }
            }
        }
        for tok in dead {
            self.net.remove(tok);
            let lost: Vec<ServerId> = self.to_server.iter().filter(|(_, t)| **t == tok).map(|(s, _)| *s).collect();
            self.to_server.retain(|_, t| *t != tok);
            for s in lost {
                if refused.contains(&tok) {
                    // The server's port refused (or never answered) the
                    // connection: a probe outstanding has failed now.
                    self.step(MasterInput::Unreachable(s));
                } else if let Some(&nonce) = self.st.probes.get(&s) {
                    // A connection that worked closed: the probe on it may
                    // be lost, so it goes again on a new one (which, if the
                    // process is gone, is refused).
                    self.send(s, MasterMsg::Probe { nonce });
                }
            }
        }
    }
}

/// The name master processes hold the lease under (no server may take it).
pub const LEASE_HOLDER: &str = "(master)";

/// The topology persisted as `version`'s config text.
impl MasterNode {
    /// Copies the master's counts into what `GET /metrics` shows.
    /// A RESP client's commands: INFO (`server`, `failgroup`), PING, QUIT;
    /// anything else is refused with a Redis error naming what it takes,
    /// and the connection closed.
    fn resp(&mut self, tok: Token) {
        use crate::resp::reply;
        let limits = self.cfg.file.limits.resp();
        loop {
            let Some(c) = self.net.conns.get(&tok).filter(|c| !c.closing) else { return };
            let args = match crate::resp::decode(&c.rbuf, &limits) {
                Ok(Some((args, used))) => {
                    let c = self.net.conns.get_mut(&tok).expect("connection");
                    c.rbuf.drain(..used);
                    args
                }
                Ok(None) => return,
                Err(e) => {
                    let c = self.net.conns.get_mut(&tok).expect("connection");
                    reply::error(&mut c.wbuf, &format!("ERR Protocol error: {e}"));
                    c.closing = true;
                    return;
                }
            };
            let name = args.first().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).unwrap_or_default();
            let text =
                (name == "info").then(|| self.info(args.get(1).map(|a| String::from_utf8_lossy(a).to_lowercase())));
            let c = self.net.conns.get_mut(&tok).expect("connection");
            match (name.as_str(), args.len()) {
                ("ping", 1) => reply::simple(&mut c.wbuf, "PONG"),
                ("ping", 2) => reply::bulk(&mut c.wbuf, &args[1]),
                ("info", 1 | 2) => reply::bulk(&mut c.wbuf, text.unwrap_or_default().as_bytes()),
                ("quit", _) => {
                    reply::simple(&mut c.wbuf, "OK");
                    c.closing = true;
                }
                ("ping" | "info", _) => {
                    reply::error(&mut c.wbuf, &format!("ERR wrong number of arguments for '{name}' command"))
                }
                // Anything else (garbage too) is refused and the
                // connection closed: the master is no cache server.
                _ => {
                    let why =
                        format!("ERR this is the failgroup master: it answers INFO, PING and QUIT (not '{name}')");
                    reply::error(&mut c.wbuf, &why);
                    c.closing = true;
                }
            }
            c.flush();
        }
    }

    /// The master's INFO: `server` and `failgroup` sections.
    fn info(&self, section: Option<String>) -> String {
        let want = |n: &str| {
            matches!(section.as_deref(), None | Some("all" | "everything" | "default")) || section.as_deref() == Some(n)
        };
        let mut o = String::new();
        if want("server") {
            o += &format!(
                "# Server\r\nredis_version:{}\r\nfailgroup_version:{}\r\nrole:failgroup-master\r\nprocess_id:{}\r\n\r\n",
                crate::resp::REDIS_VERSION,
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            );
        }
        if want("failgroup") {
            let topo = &self.st.topology;
            let offline: Vec<&str> = topo.servers().filter(|s| !self.st.is_online(*s)).map(|s| topo.name(s)).collect();
            o += &format!(
                "# Failgroup\r\nacting:{}\r\nview_version:{}\r\ntopology_version:{}\r\nservers:{}\r\n\
                 servers_offline:{}\r\noffline:{}\r\nprobes:{}\r\nnotices:{}\r\nmarked_offline:{}\r\n\
                 marked_online:{}\r\n\r\n",
                u8::from(self.lease.acting(self.clock.now())),
                self.st.version().counter,
                topo.version(),
                topo.servers().count(),
                offline.len(),
                offline.join(","),
                self.probes,
                self.notices,
                self.failovers.values().sum::<u64>(),
                self.marked_online,
            );
        }
        o
    }

    fn publish(&mut self) {
        use crate::metrics::{Metric, Published};
        self.published_at = std::time::Instant::now();
        let topo = &self.st.topology;
        let offline = topo.servers().filter(|s| !self.st.is_online(*s)).count();
        let marked_offline: u64 = self.failovers.values().sum();
        let acting = self.lease.acting(self.clock.now());
        let metrics = vec![
            (
                "failgroup_master_acting",
                "1 while this master holds the lease and acts, else 0.",
                None,
                Metric::Gauge(i64::from(acting)),
            ),
            (
                "failgroup_master_probes",
                "Probes sent to servers reported offline or rechecked (c19, c20).",
                None,
                Metric::Counter(self.probes),
            ),
            (
                "failgroup_master_notices",
                "Notices of a server's liveness sent to servers (c16, c17).",
                None,
                Metric::Counter(self.notices),
            ),
            (
                "failgroup_master_marked_offline",
                "Servers marked offline (failovers).",
                None,
                Metric::Counter(marked_offline),
            ),
            (
                "failgroup_master_marked_online",
                "Servers announced online again (c21).",
                None,
                Metric::Counter(self.marked_online),
            ),
            (
                "failgroup_master_servers_offline",
                "Servers the view has offline now.",
                None,
                Metric::Gauge(offline as i64),
            ),
            (
                "failgroup_master_view_version",
                "The counter of the view's version.",
                None,
                Metric::Gauge(self.st.version.counter as i64),
            ),
            (
                "failgroup_master_topology_version",
                "The topology's version in force.",
                None,
                Metric::Gauge(topo.version() as i64),
            ),
            (
                "failgroup_master_topology_changes",
                "Topology changes made (issue 17).",
                None,
                Metric::Counter(self.topology_changes),
            ),
        ];
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = Published { metrics };
        if self.board.wanted() {
            let view = self.status();
            self.board.post(view);
        }
    }
}

fn saved_topology(version: u64, text: &[u8]) -> Result<Topology, NodeError> {
    let bad = |why: String| NodeError::Topology(format!("the topology version {version} in the store: {why}"));
    let text = std::str::from_utf8(text).map_err(|e| bad(e.to_string()))?;
    let spec: ClusterSpec = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    spec.validate().map_err(|e| bad(e.to_string()))
}

/// `failgroup master`: runs the master until SIGTERM/SIGINT.
pub fn main(cfg: Config, listen: Option<String>) -> Result<(), NodeError> {
    MasterNode::start(cfg, listen, crate::util::stop_flag())?.run()
}
