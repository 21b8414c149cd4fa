//! The blocking Rust client: fetches the topology from any server or the
//! master, sends each request straight to its slot's owner (one hop), and
//! runs the core's client state machine for the rest: retries, failover
//! mode, probes of the owner and reports to the master (c10-c14).
//!
//! ```no_run
//! let mut c = failgroup::Client::connect("127.0.0.1:7101").unwrap();
//! c.set(b"k", b"v").unwrap();
//! assert_eq!(c.get(b"k").unwrap(), Some(b"v".to_vec()));
//! ```
//!
//! A cluster with a `secret` and node links over TLS (`tls.nodes`):
//!
//! ```no_run
//! use failgroup::{net::tls::ClientTls, Client, ClientOptions};
//! let tls = ClientTls::new("ca.pem".as_ref(), None).unwrap();
//! let options = ClientOptions { secret: Some("s3cret".into()), tls: Some(tls) };
//! let mut c = Client::connect_opts("10.0.0.11:7101", options).unwrap();
//! ```

use crate::net::wire::{ClusterInfo, Msg, Peer};
use crate::net::NodeLink;
use crate::net::{Clock, Timers};
use failgroup_model::{
    ClientId, ClientInput, ClientOutput, ClientState, ClientTimer, ErrorKind, Forwarded, Op, OpResult, ServerId,
    SetCond, SetOpts, Topology,
};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Why an operation failed.
#[derive(Debug)]
pub enum Error {
    /// The cluster answered with an error (unavailable, timeout, not an
    /// integer, store failure).
    Cluster(ErrorKind),
    /// The topology could not be fetched or is invalid.
    Setup(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Cluster(e) => write!(f, "{e}"),
            Error::Setup(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

/// How a client reaches the cluster: the shared secret (`secret`) and TLS
/// (`tls.nodes`), where the cluster uses them.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    pub secret: Option<String>,
    /// The nodes' CA (and a certificate of the client's own, if any): every
    /// connection to a server or the master runs over TLS.
    pub tls: Option<crate::net::tls::ClientTls>,
}

impl ClientOptions {
    /// A node link to `addr` as `from`, with the secret and TLS.
    pub fn link(&self, addr: &str, from: Peer, timeout: Duration) -> io::Result<NodeLink> {
        NodeLink::open_with(addr, from, self.secret.as_deref(), timeout, self.tls.as_ref())
    }

    fn open(&self, addr: &str, id: ClientId, timeout: Duration) -> io::Result<NodeLink> {
        self.link(addr, Peer::Client(id), timeout)
    }
}

pub struct Client {
    core: failgroup_model::Client,
    st: ClientState,
    info: ClusterInfo,
    options: ClientOptions,
    clock: Clock,
    conns: HashMap<ServerId, NodeLink>,
    master: Option<NodeLink>,
    timers: Timers<ClientTimer>,
    seq: u64,
    /// When the topology was last asked for again (after a server could
    /// not be reached): at most once a second.
    refreshed: std::time::Instant,
}

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

impl Client {
    /// Connects through `addr` (any server, or the master) without a secret.
    pub fn connect(addr: &str) -> Result<Client, Error> {
        Client::connect_with(addr, None)
    }

    /// Connects through `addr`, presenting the cluster's shared secret.
    pub fn connect_with(addr: &str, secret: Option<&str>) -> Result<Client, Error> {
        Client::connect_opts(addr, ClientOptions { secret: secret.map(str::to_string), tls: None })
    }

    /// Connects through `addr` with the secret and TLS `options` give.
    pub fn connect_opts(addr: &str, options: ClientOptions) -> Result<Client, Error> {
        let id = ClientId(crate::util::random_u64());
        let setup = |e: io::Error| Error::Setup(format!("{addr}: {e}"));
        let mut conn = options.open(addr, id, CONNECT_TIMEOUT).map_err(setup)?;
        conn.send(&Msg::InfoRequest).map_err(setup)?;
        let info = match conn.recv().map_err(setup)? {
            Msg::Info(info) => *info,
            other => return Err(Error::Setup(format!("{addr}: expected the topology, got {other:?}"))),
        };
        let topology: Topology = info.cluster.validate().map_err(|e| Error::Setup(format!("topology: {e}")))?;
        let core = failgroup_model::Client::new(id, Arc::new(topology), info.protocol.clone());
        Ok(Client {
            core,
            st: ClientState::default(),
            info,
            options,
            clock: Clock::new(),
            conns: HashMap::new(),
            master: None,
            timers: Timers::new(),
            seq: 0,
            refreshed: std::time::Instant::now(),
        })
    }

    /// A server could not be reached: asks a reachable one for the topology
    /// (at most once a second, for at most 100 ms: the operation waits
    /// meanwhile) and takes it if newer (servers added, moved or removed
    /// since connect, issue 17). Identities never change, so the failover
    /// modes kept stay right.
    fn refresh_topology(&mut self) {
        if self.refreshed.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.refreshed = std::time::Instant::now();
        let deadline = self.refreshed + Duration::from_millis(100);
        let topology = self.core.topology.clone();
        for s in topology.servers() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            let Ok(mut link) = self.options.open(topology.addr(s), self.core.id, left) else { continue };
            let Ok(Msg::Info(info)) = link.send(&Msg::InfoRequest).and_then(|()| link.recv()) else { continue };
            if let Ok(t) = info.cluster.validate() {
                if t.version() > topology.version() {
                    self.core = failgroup_model::Client::new(self.core.id, Arc::new(t), info.protocol.clone());
                    self.info = *info;
                }
            }
            return;
        }
    }

    /// This client's id: with a sequence number it names each request, and
    /// the store records applied writes under that name.
    pub fn id(&self) -> ClientId {
        self.core.id
    }

    /// The sequence number of the last operation run.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// The topology in use.
    pub fn topology(&self) -> &Topology {
        &self.core.topology
    }

    /// Servers this client is in failover mode for.
    pub fn failover_modes(&self) -> Vec<ServerId> {
        self.st.failover_servers().collect()
    }

    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        match self.run(Op::Get(key.to_vec()))? {
            OpResult::Value(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }

    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.run(Op::Set(key.to_vec(), value.to_vec())).map(drop)
    }

    /// SET with a time to live in milliseconds.
    pub fn set_px(&mut self, key: &[u8], value: &[u8], ttl_ms: u64) -> Result<(), Error> {
        let opts = SetOpts { ttl_ms: Some(ttl_ms), cond: SetCond::Always };
        self.run(Op::SetWith(key.to_vec(), value.to_vec(), opts)).map(drop)
    }

    /// DEL: whether the key existed.
    pub fn del(&mut self, key: &[u8]) -> Result<bool, Error> {
        match self.run(Op::Del(key.to_vec()))? {
            OpResult::Deleted(n) => Ok(n == 1),
            other => Err(unexpected(other)),
        }
    }

    pub fn incr_by(&mut self, key: &[u8], by: i64) -> Result<i64, Error> {
        match self.run(Op::Incr(key.to_vec(), by))? {
            OpResult::Int(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// Runs one operation to completion through the core's client.
    pub fn run(&mut self, op: Op) -> Result<OpResult, Error> {
        self.seq += 1;
        let seq = self.seq;
        let mut inputs = vec![ClientInput::Invoke { seq, op }];
        // The server the request is at, for reading its reply.
        let mut at: Option<ServerId> = None;
        loop {
            while let Some(input) = inputs.pop() {
                let mut out = Vec::new();
                self.core.step(&mut self.st, self.clock.now(), input, &mut out);
                for o in out {
                    match o {
                        ClientOutput::Send { to, req, op } => {
                            at = Some(to);
                            let fwd = Forwarded { req, op, hops: 0 };
                            if self
                                .conn(to)
                                .and_then(|c| c.send(&Msg::Forward { op: req.seq, incarnation: 0, fwd }))
                                .is_err()
                            {
                                self.conns.remove(&to);
                                self.refresh_topology();
                                inputs.push(ClientInput::SendFailed { seq: req.seq, to });
                            }
                        }
                        ClientOutput::Complete { seq: done, result } if done == seq => {
                            return match result {
                                OpResult::Err(e) => Err(Error::Cluster(e)),
                                r => Ok(r),
                            };
                        }
                        ClientOutput::Complete { .. } => {}
                        ClientOutput::ToMaster(report) => self.report(report),
                        ClientOutput::SetTimer { timer, at } => self.timers.set(timer, at),
                        ClientOutput::CancelTimer(timer) => self.timers.cancel(timer),
                    }
                }
            }
            let now = self.clock.now();
            if let Some(timer) = self.timers.pop_due(now) {
                inputs.push(ClientInput::Timer(timer));
                continue;
            }
            let Some(to) = at else { return Err(Error::Cluster(ErrorKind::Unavailable)) };
            let wait = Duration::from_millis(self.timers.wait(now).unwrap_or(1000).max(1));
            let Some(conn) = self.conns.get_mut(&to) else {
                std::thread::sleep(wait.min(Duration::from_millis(10)));
                continue;
            };
            let _ = conn.set_read_timeout(wait);
            match conn.recv() {
                Ok(Msg::ForwardReply { op, result, .. }) => {
                    inputs.push(ClientInput::Reply { seq: op, from: to, result })
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(_) => {
                    self.conns.remove(&to);
                    self.refresh_topology();
                    inputs.push(ClientInput::SendFailed { seq, to });
                }
            }
        }
    }

    fn conn(&mut self, to: ServerId) -> io::Result<&mut NodeLink> {
        if !self.conns.contains_key(&to) {
            let addr = self.core.topology.addr(to).to_string();
            let conn = self.options.open(&addr, self.core.id, CONNECT_TIMEOUT)?;
            self.conns.insert(to, conn);
        }
        Ok(self.conns.get_mut(&to).expect("just inserted"))
    }

    /// Best effort: while the master is down, failure handling waits.
    fn report(&mut self, report: failgroup_model::Report) {
        if self.master.is_none() {
            let t = Duration::from_millis(200);
            self.master = self.options.open(&self.info.master, self.core.id, t).ok();
        }
        if let Some(m) = self.master.as_mut() {
            if m.send(&Msg::Report(report)).is_err() {
                self.master = None;
            }
        }
    }
}

fn unexpected(r: OpResult) -> Error {
    Error::Setup(format!("unexpected result {r:?}"))
}
