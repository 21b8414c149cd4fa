//! The cluster's TOML configuration file, shared by the master and every
//! server. Errors name the field that is wrong.
//!
//! ```toml
//! master = "127.0.0.1:7100"
//! store = "sqlite:/var/lib/failgroup/data.db"
//! mode = "linearizable"          # or "available"
//! # secret = "..."               # authenticates nodes to each other
//! # requirepass = "..."          # AUTH for RESP clients
//!
//! [timing]                       # milliseconds; every field optional
//! lease = 2000
//!
//! [limits]                       # every field optional
//! maxclients = 10000
//!
//! [cache]                        # every field optional
//! ttl_keys = true                # cache keys with a time to live
//! maxmemory = "1gb"              # 0 (the default): no bound
//! maxmemory_policy = "allkeys-lru"
//!
//! [cluster]
//! [[cluster.servers]]
//! name = "s1"
//! addr = "127.0.0.1:7101"
//! [[cluster.groups]]
//! name = "g1"
//! members = ["s1"]
//! ```

pub use crate::net::tls::{TlsAuthClients, TlsConfig};
use crate::resp;
use failgroup_model::{ClusterSpec, Mode, Policy, ProtocolConfig, ServerId, Timing, Topology};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Limits of a server, with safe defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most client connections at once (Redis' `maxclients`).
    pub maxclients: usize,
    /// Largest bulk string a client may send (Redis' `proto-max-bulk-len`).
    pub max_bulk: usize,
    /// Largest unprocessed input of one connection.
    pub max_query_buffer: usize,
    /// Largest unsent output of one connection before it is closed.
    pub max_output_buffer: usize,
    /// Largest node-protocol frame.
    pub max_frame: usize,
    /// Seconds a client connection may stay idle; 0: forever (Redis' `timeout`).
    pub idle_timeout: u64,
    /// Pipelined commands one connection runs before the others get a turn.
    pub max_pipeline: usize,
    /// Milliseconds a server told to stop (SIGTERM, `failgroup admin
    /// drain`) spends handing its rights to its group's failover servers
    /// and finishing the commands it took before it exits anyway; 0: exit at
    /// once, leaving its slots to be taken over after a lease.
    pub drain_timeout: u64,
    /// Microseconds from which a command goes in the slow log (Redis's
    /// `slowlog-log-slower-than`: -1 logs none, 0 every command); a
    /// command's time runs from its decoding to its reply.
    pub slowlog_log_slower_than: i64,
    /// Entries the slow log keeps (Redis's `slowlog-max-len`).
    pub slowlog_max_len: usize,
}

/// The cache of a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Whether keys with a time to live are cached (served until a margin
    /// for clock drift before they expire). Turn off where the store's
    /// clock may be stepped forward (specs/properties.md, "steps of any
    /// clock").
    pub ttl_keys: bool,
    /// Bytes the server may use before it drops cached copies (Redis's
    /// `maxmemory`: a number, or a string with Redis's units, `"100mb"`);
    /// 0: no bound.
    pub maxmemory: Memory,
    /// Which copies go first (Redis's `maxmemory-policy`).
    pub maxmemory_policy: Policy,
    /// Entries sampled per eviction (Redis's `maxmemory-samples`).
    pub maxmemory_samples: usize,
}

impl CacheConfig {
    /// What `maxmemory_samples` may be (Redis's bounds).
    pub const SAMPLES: std::ops::RangeInclusive<i64> = 1..=i32::MAX as i64;
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig { ttl_keys: true, maxmemory: Memory(0), maxmemory_policy: Policy::NoEviction, maxmemory_samples: 5 }
    }
}

/// A number of bytes, written as Redis writes memory sizes: `1000`, `1k`
/// (1,000), `1kb` (1,024), `m`/`mb`, `g`/`gb`, in any case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Memory(pub u64);

impl std::str::FromStr for Memory {
    type Err = String;
    fn from_str(s: &str) -> Result<Memory, String> {
        let t = s.trim().to_ascii_lowercase();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let mul: u64 = match unit {
            "" | "b" => 1,
            "k" => 1_000,
            "kb" => 1 << 10,
            "m" => 1_000_000,
            "mb" => 1 << 20,
            "g" => 1_000_000_000,
            "gb" => 1 << 30,
            _ => return Err(format!("{s:?} is not a memory size (e.g. 100mb, 1gb)")),
        };
        let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a memory size (e.g. 100mb, 1gb)"))?;
        n.checked_mul(mul).map(Memory).ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Memory, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(Memory(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            maxclients: 10_000,
            max_bulk: 512 * 1024 * 1024,
            max_query_buffer: 1024 * 1024 * 1024,
            max_output_buffer: 256 * 1024 * 1024,
            max_frame: crate::net::wire::MAX_FRAME,
            idle_timeout: 0,
            max_pipeline: 1024,
            drain_timeout: 5_000,
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
        }
    }
}

impl Limits {
    pub fn resp(&self) -> resp::DecodeLimits {
        resp::DecodeLimits { max_bulk: self.max_bulk, ..resp::DecodeLimits::default() }
    }
}

fn default_store() -> String {
    "sqlite:failgroup.db".into()
}

fn yes() -> bool {
    true
}

/// A RESP user beside `default`, whose password is `requirepass`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub name: String,
    /// None: any password logs in (Redis's `nopass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A disabled user cannot log in (`WRONGPASS`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Only commands that do not write (COMMAND INFO's `write` flag): a
    /// write gets `NOPERM`.
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address the master listens on.
    pub master: String,
    /// Addresses of standby masters (`failgroup master --listen ADDR`):
    /// every master process contends for the lease in the store, the one
    /// holding it acts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standby_masters: Vec<String>,
    /// `sqlite:PATH` (relative paths are relative to the config file).
    #[serde(default = "default_store")]
    pub store: String,
    #[serde(default)]
    pub mode: Mode,
    /// Shared secret of the nodes; when set, every node connection must
    /// present it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Password RESP clients must give with AUTH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirepass: Option<String>,
    /// RESP users beside `default` (`[[users]]`): `AUTH name password`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserSpec>,
    #[serde(default)]
    pub timing: Timing,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub cache: CacheConfig,
    /// Addresses servers listen on, by name, where not their `addr`
    /// (behind NAT, in a container: `s1 = "0.0.0.0:7101"`); clients and
    /// peers are still told `addr`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub bind: std::collections::BTreeMap<String, String>,
    /// HTTP addresses of the nodes' Prometheus/OpenMetrics text (`GET
    /// /metrics`); a node without one serves none.
    #[serde(default, skip_serializing_if = "MetricsConfig::is_empty")]
    pub metrics: MetricsConfig,
    /// RESP over TLS (`[tls]`): certificate, key, client CAs, and each
    /// server's TLS address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    pub cluster: ClusterSpec,
}

/// `[metrics]`: where each node serves its metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// The configured master's (`master = "127.0.0.1:9100"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Each server's, by name (`[metrics.servers] s1 = "127.0.0.1:9101"`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub servers: std::collections::BTreeMap<String, String>,
    /// Each standby master's, by its address in `standby_masters`
    /// (`[metrics.standby_masters] "10.0.0.12:7100" = "10.0.0.12:9100"`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub standby_masters: std::collections::BTreeMap<String, String>,
}

impl MetricsConfig {
    pub fn is_empty(&self) -> bool {
        self.master.is_none() && self.servers.is_empty() && self.standby_masters.is_empty()
    }
}

/// A loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub file: FileConfig,
    pub topology: Topology,
    /// Where the config was read from (relative store paths start there).
    pub dir: PathBuf,
    /// The store `file.store` names.
    pub store: StoreUrl,
    /// The file it was loaded from, for SIGHUP.
    pub path: Option<PathBuf>,
}

/// Why a configuration is refused.
#[derive(Debug)]
pub enum BadConfig {
    /// The file could not be read.
    Read { path: PathBuf, error: std::io::Error },
    /// The file at `path` is not a valid configuration.
    InFile { path: PathBuf, error: Box<BadConfig> },
    /// Not TOML, or a field of the wrong type (the TOML parser's words).
    Syntax(String),
    /// The `[cluster]` table.
    Cluster(failgroup_model::ConfigError),
    /// A field's value, and why it is refused.
    Field { field: String, why: String },
    /// `--id` names no server of the config.
    UnknownServer { name: String, known: Vec<String> },
}

impl std::fmt::Display for BadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadConfig::Read { path, error } => write!(f, "{}: {error}", path.display()),
            BadConfig::InFile { path, error } => write!(f, "{}: {error}", path.display()),
            BadConfig::Syntax(why) => f.write_str(why),
            BadConfig::Cluster(e) => write!(f, "cluster.{e}"),
            BadConfig::Field { field, why } => write!(f, "{field}: {why}"),
            BadConfig::UnknownServer { name, known } => {
                write!(f, "--id: no server {name:?} in the config (servers: {})", known.join(", "))
            }
        }
    }
}

impl std::error::Error for BadConfig {}

/// Why a node's hello is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    WrongSecret,
    /// A server id beyond the topology.
    NoSuchServer(ServerId),
    /// A master or server hello from an address of no node (no secret set).
    NotANode(std::net::IpAddr),
    /// A master or server hello without a certificate of the cluster's CA
    /// (`tls.nodes`).
    NoCertificate,
    /// A hello in plain text where node links run over TLS (`tls.nodes`):
    /// library clients and tools too, so that no secret or data crosses
    /// the network in the clear.
    PlainText,
}

/// How a node connection came: in plain text, or over TLS with or without
/// a certificate of the cluster's CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Plain,
    Tls,
    Certified,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::WrongSecret => f.write_str("wrong secret"),
            Refusal::NoSuchServer(s) => write!(f, "no server {s} in this cluster"),
            Refusal::NotANode(ip) => {
                write!(f, "{ip} is not a node of this cluster (set `secret` to admit nodes by it instead)")
            }
            Refusal::NoCertificate => {
                f.write_str("a node must connect over TLS with a certificate of the cluster's CA (tls.nodes)")
            }
            Refusal::PlainText => f.write_str(
                "node links run over TLS here (tls.nodes): connect with TLS (ClientOptions::tls, or a config with [tls])",
            ),
        }
    }
}

impl std::error::Error for Refusal {}

fn field(field: &str, why: impl Into<String>) -> BadConfig {
    BadConfig::Field { field: field.into(), why: why.into() }
}

/// The store a configuration selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(crate::store::postgres::protocol::PgUrl),
}

impl StoreUrl {
    /// The store's kind, as INFO names it.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreUrl::Sqlite(_) => "sqlite",
            StoreUrl::Postgres(_) => "postgres",
        }
    }

    /// Opens the database, creating or checking its schema. A batch that
    /// meets a lost connection is tried again for up to `retry_for`.
    pub fn open(
        &self,
        retry_for: std::time::Duration,
    ) -> Result<Box<dyn crate::store::BatchStore + Send>, crate::store::StoreError> {
        Ok(match self {
            StoreUrl::Sqlite(path) => {
                Box::new(crate::store::sqlite::SqliteStore::new(crate::store::sqlite::open(path)?))
            }
            StoreUrl::Postgres(url) => {
                let conn = crate::store::postgres::open(url)?;
                Box::new(crate::store::postgres::PgStore::new(url.clone(), conn, retry_for))
            }
        })
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, BadConfig> {
        let text =
            std::fs::read_to_string(path).map_err(|error| BadConfig::Read { path: path.to_path_buf(), error })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let cfg = Config::parse(&text, dir)
            .map_err(|e| BadConfig::InFile { path: path.to_path_buf(), error: Box::new(e) })?;
        Ok(Config { path: Some(path.to_path_buf()), ..cfg })
    }

    pub fn parse(text: &str, dir: PathBuf) -> Result<Config, BadConfig> {
        let mut file: FileConfig =
            toml::from_str(text).map_err(|e| BadConfig::Syntax(e.to_string().trim_end().to_string()))?;
        let batch_set = text
            .parse::<toml::Table>()
            .ok()
            .is_some_and(|t| t.get("timing").and_then(|t| t.get("hand_over_batch")).is_some());
        if !batch_set {
            file.timing.hand_over_batch = default_timing(&file.store).hand_over_batch;
        }
        Config::new(file, dir)
    }

    pub fn new(file: FileConfig, dir: PathBuf) -> Result<Config, BadConfig> {
        let topology = file.cluster.validate().map_err(BadConfig::Cluster)?;
        file.timing.validate().map_err(|why| match why.split_once(": ") {
            Some((f, w)) => field(f, w),
            None => field("timing", why),
        })?;
        check_addr("master", &file.master)?;
        // A drain hands its rights over in batches: it must be able to end
        // before `drain_timeout` cuts it short.
        let most = topology.servers().map(|s| topology.owned_slots(s).count()).max().unwrap_or(0);
        let t = &file.timing;
        let drain = (most.div_ceil(t.batch()) as u64).saturating_sub(1).saturating_mul(t.hand_over_gap);
        if file.limits.drain_timeout > 0 && drain >= file.limits.drain_timeout {
            let why = format!(
                "a drain of {most} slots in batches of {} takes {drain} ms, not under limits.drain_timeout ({} ms)",
                t.hand_over_batch, file.limits.drain_timeout
            );
            return Err(field("timing.hand_over_gap", why));
        }
        if let Some(i) = file.cluster.servers.iter().position(|s| s.name == crate::master::LEASE_HOLDER) {
            let why = format!("{:?} is the name master processes hold their lease under", crate::master::LEASE_HOLDER);
            return Err(field(&format!("cluster.servers[{i}].name"), why));
        }
        for (i, a) in file.standby_masters.iter().enumerate() {
            check_addr(&format!("standby_masters[{i}]"), a)?;
        }
        for (i, s) in file.cluster.servers.iter().enumerate() {
            check_addr(&format!("cluster.servers[{i}].addr"), &s.addr)?;
        }
        for (name, addr) in &file.metrics.servers {
            if !file.cluster.servers.iter().any(|s| &s.name == name) {
                return Err(field(&format!("metrics.servers.{name}"), "names no server of [cluster]"));
            }
            check_addr(&format!("metrics.servers.{name}"), addr)?;
        }
        if let Some(addr) = &file.metrics.master {
            check_addr("metrics.master", addr)?;
        }
        for (standby, addr) in &file.metrics.standby_masters {
            if !file.standby_masters.contains(standby) {
                return Err(field(&format!("metrics.standby_masters.{standby:?}"), "is no address of standby_masters"));
            }
            check_addr(&format!("metrics.standby_masters.{standby:?}"), addr)?;
        }
        if let Some(tls) = &file.tls {
            for (name, addr) in &tls.servers {
                if !file.cluster.servers.iter().any(|s| &s.name == name) {
                    return Err(field(&format!("tls.servers.{name}"), "names no server of [cluster]"));
                }
                check_addr(&format!("tls.servers.{name}"), addr)?;
            }
            // The files are read and checked now, so that a bad one stops
            // the start with its name.
            crate::net::tls::acceptor(tls, &dir).map_err(|e| field("tls", e.0))?;
            if tls.nodes {
                crate::net::tls::node_tls(tls, &dir).map_err(|e| field("tls", e.0))?;
            }
        }
        for (name, bind) in &file.bind {
            if !file.cluster.servers.iter().any(|s| &s.name == name) {
                return Err(field(&format!("bind.{name}"), "names no server of [cluster]"));
            }
            check_addr(&format!("bind.{name}"), bind)?;
        }
        if file.limits.maxclients == 0 {
            return Err(field("limits.maxclients", "must be positive"));
        }
        if !CacheConfig::SAMPLES.contains(&(file.cache.maxmemory_samples as i64)) {
            return Err(field("cache.maxmemory_samples", "must be 1..=2147483647"));
        }
        if file.limits.max_pipeline == 0 {
            return Err(field("limits.max_pipeline", "must be positive"));
        }
        if file.limits.max_frame < 1024 {
            return Err(field("limits.max_frame", "must be at least 1024"));
        }
        if file.requirepass.is_some() && file.secret.is_none() {
            return Err(field(
                "secret",
                "must be set when requirepass is: the node protocol on every server's port runs requests \
                 too, and without a secret it would run them without the password (docs/DEPLOYMENT.md, \"Secrets\")",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, u) in file.users.iter().enumerate() {
            let f = format!("users[{i}].name");
            if u.name.is_empty() || !u.name.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
                return Err(field(&f, "must be non-empty, without spaces or special characters"));
            }
            if u.name == "default" {
                return Err(field(&f, "\"default\" is the user requirepass logs in"));
            }
            if !names.insert(u.name.as_str()) {
                return Err(field(&f, format!("duplicate user {:?}", u.name)));
            }
        }
        if !file.users.is_empty() && file.secret.is_none() {
            return Err(field(
                "secret",
                "must be set when users are: the node protocol on every server's port runs requests \
                 without AUTH, so only nodes that know the secret may speak it",
            ));
        }
        let store = store_url(&file.store, &dir)?;
        Ok(Config { file, topology, dir, store, path: None })
    }

    /// What a re-read of the file changes: the settings a running server
    /// takes at once (`[limits]`, `[cache]` but `ttl_keys`, `requirepass`),
    /// and those that need a restart. Returns `self` with the live ones
    /// taken from `new`, and the names of each kind that differ.
    pub fn reloaded(&self, new: &Config) -> (Config, Vec<&'static str>, Vec<&'static str>) {
        let (old, newf) = (&self.file, &new.file);
        let mut cfg = self.clone();
        let mut live = Vec::new();
        if old.limits != newf.limits {
            live.push("limits");
            cfg.file.limits = newf.limits.clone();
        }
        let cache = CacheConfig { ttl_keys: old.cache.ttl_keys, ..newf.cache.clone() };
        if old.cache != cache {
            live.push("cache");
            cfg.file.cache = cache;
        }
        if old.requirepass != newf.requirepass {
            live.push("requirepass");
            cfg.file.requirepass = newf.requirepass.clone();
        }
        let restart = [
            ("master", old.master != newf.master),
            ("store", old.store != newf.store),
            ("mode", old.mode != newf.mode),
            ("secret", old.secret != newf.secret),
            ("timing", old.timing != newf.timing),
            ("cache.ttl_keys", old.cache.ttl_keys != newf.cache.ttl_keys),
            ("cluster", old.cluster != newf.cluster),
            ("bind", old.bind != newf.bind),
            ("metrics", old.metrics != newf.metrics),
            ("tls", old.tls != newf.tls),
        ];
        (cfg, live, restart.into_iter().filter(|(_, changed)| *changed).map(|(n, _)| n).collect())
    }

    /// The address server `id` of `topology` listens on: its `bind`, else
    /// its `addr`.
    pub fn listen_addr(&self, topology: &Topology, id: ServerId) -> String {
        let name = topology.name(id);
        self.file.bind.get(name).cloned().unwrap_or_else(|| topology.addr(id).to_string())
    }

    pub fn protocol(&self) -> ProtocolConfig {
        ProtocolConfig {
            mode: self.file.mode,
            timing: self.file.timing.clone(),
            cache_ttl_keys: self.file.cache.ttl_keys,
            usage: self.file.cache.maxmemory_policy.usage(),
            mutant: None,
        }
    }

    /// What nodes tell a client that asks for the topology: `topology`,
    /// the one in force at the node.
    pub fn cluster_info(&self, topology: &Topology) -> crate::net::wire::ClusterInfo {
        crate::net::wire::ClusterInfo {
            cluster: topology.spec(),
            protocol: self.protocol(),
            master: self.file.master.clone(),
        }
    }

    /// Opens the configured store; a batch that meets a lost connection is
    /// tried again for up to the request timeout (as long as its requests
    /// may wait).
    pub fn open_store(&self) -> Result<Box<dyn crate::store::BatchStore + Send>, crate::store::StoreError> {
        self.store.open(std::time::Duration::from_millis(self.file.timing.request_timeout))
    }

    /// A server by name (e.g. "s1"), or by its index in the config.
    pub fn server_id(&self, name: &str) -> Result<ServerId, BadConfig> {
        self.topology.id_of(name).ok_or_else(|| BadConfig::UnknownServer {
            name: name.to_string(),
            known: self.file.cluster.servers.iter().map(|s| s.name.clone()).collect(),
        })
    }

    /// What every node must agree on, for the store to check: the mode and
    /// a fingerprint (FNV-1a) of the server names in order, their groups and
    /// each slot's owner. Addresses are left out: a server may move.
    pub fn mark(&self) -> crate::store::ClusterMark {
        let topo = &self.topology;
        use failgroup_model::bytes::{fnv1a, FNV_OFFSET};
        let mut h = FNV_OFFSET;
        let mut eat = |bytes: &[u8]| h = fnv1a(fnv1a(h, bytes), &[0xff]);
        for s in topo.servers() {
            eat(topo.name(s).as_bytes());
            eat(topo.group_name(s).as_bytes());
        }
        for slot in 0..topo.slot_count() {
            eat(&topo.owner(failgroup_model::Slot(slot)).0.to_be_bytes());
        }
        crate::store::ClusterMark { mode: self.file.mode, topology: h }
    }

    /// Whether a node connection from `ip` may say hello as `from` with
    /// `secret`. With a secret configured, the secret decides. Without one,
    /// a connection that claims to be the master or a server must come
    /// from an address of the topology (tools and library clients may
    /// come from anywhere: they can do no more than a RESP client).
    /// `topology` is the one in force at the node asked (servers added
    /// since the config was written are known by it).
    pub fn admit(
        &self,
        topology: &Topology,
        from: crate::net::wire::Peer,
        secret: Option<&str>,
        ip: std::net::IpAddr,
        channel: Channel,
    ) -> Result<(), Refusal> {
        use crate::net::wire::Peer;
        if !crate::net::wire::secret_matches(self.file.secret.as_deref(), secret) {
            return Err(Refusal::WrongSecret);
        }
        let claims_a_node = matches!(from, Peer::Server(_) | Peer::Master);
        // Node links over mutual TLS: a node shows a certificate of the
        // cluster's CA, and that is its admission (no address check).
        if self.file.tls.as_ref().is_some_and(|t| t.nodes) {
            if channel == Channel::Plain {
                return Err(Refusal::PlainText);
            }
            if claims_a_node && channel != Channel::Certified {
                return Err(Refusal::NoCertificate);
            }
            if claims_a_node {
                return match from {
                    Peer::Server(s) if topology.is_removed(s) => Err(Refusal::NoSuchServer(s)),
                    _ => Ok(()),
                };
            }
        }
        if let Peer::Server(s) = from {
            if topology.is_removed(s) {
                return Err(Refusal::NoSuchServer(s));
            }
        }
        if self.file.secret.is_none() && claims_a_node && !self.node_ips(topology).contains(&ip) {
            return Err(Refusal::NotANode(ip));
        }
        Ok(())
    }

    /// How a library client or a tool with this config reaches the nodes:
    /// the secret, and TLS with the node certificate under `tls.nodes`.
    pub fn client_options(&self) -> Result<crate::client::ClientOptions, crate::net::tls::TlsError> {
        let tls = match self.file.tls.as_ref().filter(|t| t.nodes) {
            Some(t) => Some(crate::net::tls::node_tls(t, &self.dir).map(|n| n.client())?),
            None => None,
        };
        Ok(crate::client::ClientOptions { secret: self.file.secret.clone(), tls })
    }

    /// The addresses of the master and every server.
    fn node_ips(&self, topology: &Topology) -> Vec<std::net::IpAddr> {
        let servers = topology.servers().map(|s| topology.addr(s));
        let masters =
            std::iter::once(self.file.master.as_str()).chain(self.file.standby_masters.iter().map(String::as_str));
        let addrs = masters.chain(servers);
        addrs.filter_map(|a| crate::net::resolve(a).ok()).map(|a| a.ip()).collect()
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(&self.file).expect("a config serializes")
    }
}

fn check_addr(name: &str, addr: &str) -> Result<(), BadConfig> {
    crate::net::resolve(addr).map(drop).map_err(|_| field(name, format!("{addr:?} is not a host:port address")))
}

/// Rights a hand-over moves per store command where the file does not
/// say, on PostgreSQL. SQLite has one writer, and a long transaction holds
/// every other server's commands: 64 there. PostgreSQL locks rows, and
/// what costs is each transaction's round trip and commit: with 64, a
/// server's 5,462 rights were 86 commits one after another, and in a
/// rolling restart on a loaded machine operations waited 2-6 s for them
/// (`fault_suite::a_rolling_restart_by_drains_loses_nothing_and_waits_for_no_lease`
/// on PostgreSQL; with 1,024, 221-845 ms).
pub const POSTGRES_HAND_OVER_BATCH: u32 = 1024;

/// The timing a config gets where it says nothing: the protocol's
/// defaults, with `hand_over_batch` by the store (`POSTGRES_HAND_OVER_BATCH`).
pub fn default_timing(store: &str) -> Timing {
    let t = Timing::default();
    Timing { hand_over_batch: if postgres_scheme(store) { POSTGRES_HAND_OVER_BATCH } else { t.hand_over_batch }, ..t }
}

/// Whether `store` names a PostgreSQL database (`postgres://` or
/// `postgresql://`, as libpq's URLs).
fn postgres_scheme(store: &str) -> bool {
    matches!(store.split_once(':'), Some(("postgres" | "postgresql", _)))
}

/// The store `store` names (relative SQLite paths from `dir`).
fn store_url(store: &str, dir: &Path) -> Result<StoreUrl, BadConfig> {
    use crate::store::postgres::protocol::{redact, PgUrl};
    match store.split_once(':') {
        Some(("sqlite", path)) if !path.is_empty() => Ok(StoreUrl::Sqlite(dir.join(path))),
        _ if postgres_scheme(store) => {
            PgUrl::parse(store).map(StoreUrl::Postgres).map_err(|e| field("store", e.to_string()))
        }
        _ => Err(field(
            "store",
            format!(
                "{:?} is not a store this build knows (expected sqlite:PATH or postgres://user@host/db)",
                redact(store)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
master = "127.0.0.1:7100"
store = "sqlite:data.db"
[timing]
lease = 3000
[cluster]
[[cluster.servers]]
name = "s1"
addr = "127.0.0.1:7101"
[[cluster.groups]]
name = "g1"
members = ["s1"]
"#;

    #[test]
    fn a_drain_that_cannot_end_before_its_timeout_is_refused() {
        // One server owns all 16,384 slots: 64 batches of 256, 50 ms apart.
        assert!(Config::parse(GOOD, PathBuf::new()).is_ok());
        let slow = GOOD.replace("lease = 3000", "lease = 3000\nhand_over_batch = 16");
        let err = Config::parse(&slow, PathBuf::new()).unwrap_err().to_string();
        assert!(err.contains("timing.hand_over_gap") && err.contains("drain_timeout"), "{err}");
        let off = slow.replace("[timing]", "[limits]\ndrain_timeout = 0\n[timing]");
        assert!(Config::parse(&off, PathBuf::new()).is_ok(), "no drain, no bound");
        let longer = slow.replace("[timing]", "[limits]\ndrain_timeout = 60000\n[timing]");
        assert!(Config::parse(&longer, PathBuf::new()).is_ok());
    }

    #[test]
    fn a_hand_over_batch_by_the_store_where_the_file_says_none() {
        let batch = |text: &str| Config::parse(text, PathBuf::new()).unwrap().protocol().timing.hand_over_batch;
        assert_eq!(batch(GOOD), 64, "SQLite");
        let pg = GOOD.replace("sqlite:data.db", "postgres://u@127.0.0.1:5432/db");
        assert_eq!(batch(&pg), POSTGRES_HAND_OVER_BATCH);
        assert_eq!(batch(&pg.replace("lease = 3000", "lease = 3000\nhand_over_batch = 64")), 64, "as the file says");
        assert_eq!(batch(&GOOD.replace("lease = 3000", "lease = 3000\nhand_over_batch = 512")), 512);
        assert_eq!(default_timing("postgresql://u@h/db").hand_over_batch, POSTGRES_HAND_OVER_BATCH);
        assert_eq!(default_timing("sqlite:x.db"), Timing::default());
    }

    #[test]
    fn the_cache_section_reaches_the_core() {
        let c = Config::parse(GOOD, PathBuf::new()).unwrap();
        assert!(c.protocol().cache_ttl_keys, "keys with a time to live are cached by default");
        let off = GOOD.replace("[timing]", "[cache]\nttl_keys = false\n[timing]");
        assert!(!Config::parse(&off, PathBuf::new()).unwrap().protocol().cache_ttl_keys);
        let bad = GOOD.replace("[timing]", "[cache]\nttl_key = false\n[timing]");
        assert!(Config::parse(&bad, PathBuf::new()).unwrap_err().to_string().contains("ttl_key"));
        let cache = |toml: &str| {
            Config::parse(&GOOD.replace("[timing]", &format!("[cache]\n{toml}\n[timing]")), PathBuf::new())
                .map(|c| c.file.cache)
                .map_err(|e| e.to_string())
        };
        let c = cache("maxmemory = \"100mb\"\nmaxmemory_policy = \"allkeys-lfu\"").unwrap();
        assert_eq!((c.maxmemory, c.maxmemory_policy), (Memory(100 << 20), Policy::AllKeysLfu));
        assert_eq!(cache("maxmemory = 1000").unwrap().maxmemory, Memory(1000));
        assert_eq!(cache("maxmemory = \"2K\"").unwrap().maxmemory, Memory(2000));
        assert!(cache("maxmemory = \"lots\"").unwrap_err().contains("not a memory size"));
        assert!(cache("maxmemory_policy = \"lru\"").unwrap_err().contains("maxmemory_policy"));
        assert!(cache("maxmemory_samples = 0").unwrap_err().contains("cache.maxmemory_samples"));
    }

    #[test]
    fn parses_and_round_trips() {
        let c = Config::parse(GOOD, PathBuf::from("/x")).unwrap();
        assert_eq!(c.file.timing.lease, 3000);
        assert_eq!(c.store, StoreUrl::Sqlite(PathBuf::from("/x/data.db")));
        let again = Config::parse(&c.to_toml(), PathBuf::from("/x")).unwrap();
        assert_eq!(again.file, c.file);
    }

    #[test]
    fn errors_name_the_field() {
        let bad =
            |from: &str, to: &str| Config::parse(&GOOD.replace(from, to), PathBuf::new()).unwrap_err().to_string();
        assert!(bad("lease = 3000", "lease = \"x\"").contains("lease"));
        assert!(bad("lease = 3000", "lease = 10").contains("timing.lease"));
        assert!(bad("lease = 3000", "leese = 1").contains("leese"));
        assert!(bad("127.0.0.1:7100", "nowhere").contains("master"));
        assert!(bad("sqlite:data.db", "mysql://x").contains("store"));
        assert!(bad("members = [\"s1\"]", "members = [\"s9\"]").contains("cluster.groups"));
        assert!(bad("[timing]", "requirepass = \"pw\"\n[timing]").contains("secret:"));
        let standby = "standby_masters = [\"127.0.0.1:7150\"]\n[metrics.standby_masters]\n";
        let with = |metrics: &str| GOOD.replace("[timing]", &format!("{standby}{metrics}\n[timing]"));
        assert!(Config::parse(&with("\"127.0.0.1:7150\" = \"127.0.0.1:9150\""), PathBuf::new()).is_ok());
        let e = Config::parse(&with("\"127.0.0.1:7151\" = \"127.0.0.1:9150\""), PathBuf::new()).unwrap_err();
        assert!(e.to_string().contains("metrics.standby_masters.\"127.0.0.1:7151\""), "{e}");
        let e = Config::parse(&with("\"127.0.0.1:7150\" = \"nowhere\""), PathBuf::new()).unwrap_err();
        assert!(e.to_string().contains("metrics.standby_masters"), "{e}");
        assert!(Config::parse(
            &GOOD.replace("[timing]", "requirepass = \"pw\"\nsecret = \"s\"\n[timing]"),
            PathBuf::new()
        )
        .is_ok());
    }

    #[test]
    fn the_mark_covers_names_groups_owners_and_mode_not_addresses() {
        let mark = |from: &str, to: &str| Config::parse(&GOOD.replace(from, to), PathBuf::new()).unwrap().mark();
        let base = mark("", "");
        assert_eq!(base, mark("127.0.0.1:7101", "127.0.0.2:7201"), "an address may move");
        assert_ne!(base, mark("\"s1\"", "\"t1\""), "a name is an identity");
        assert_ne!(base.mode, mark("store = ", "mode = \"available\"\nstore = ").mode);
    }

    #[test]
    fn without_a_secret_only_the_topologys_hosts_speak_for_nodes() {
        use crate::net::wire::Peer;
        let c = Config::parse(GOOD, PathBuf::new()).unwrap();
        let (here, stranger) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        assert!(c.admit(&c.topology, Peer::Master, None, here, Channel::Plain).is_ok());
        assert!(c.admit(&c.topology, Peer::Master, None, stranger, Channel::Plain).is_err());
        assert!(c.admit(&c.topology, Peer::Server(ServerId(0)), None, stranger, Channel::Plain).is_err());
        assert!(c.admit(&c.topology, Peer::Server(ServerId(5)), None, here, Channel::Plain).is_err(), "no such server");
        assert!(c.admit(&c.topology, Peer::Admin, None, stranger, Channel::Plain).is_ok(), "tools ask from anywhere");
        let with = Config::parse(&GOOD.replace("[timing]", "secret = \"s\"\n[timing]"), PathBuf::new()).unwrap();
        assert!(
            with.admit(&with.topology, Peer::Master, Some("s"), stranger, Channel::Plain).is_ok(),
            "the secret decides"
        );
        assert!(with.admit(&with.topology, Peer::Master, None, here, Channel::Plain).is_err());
    }

    #[test]
    fn under_node_tls_every_hello_comes_over_tls_and_nodes_with_a_certificate() {
        use crate::net::wire::Peer;
        let mut c = Config::parse(GOOD, PathBuf::new()).unwrap();
        // (Parsing reads the files; admission needs the setting alone.)
        c.file.tls = Some(crate::net::tls::TlsConfig {
            cert_file: "c.pem".into(),
            key_file: "k.pem".into(),
            ca_file: Some("ca.pem".into()),
            auth_clients: Default::default(),
            servers: Default::default(),
            nodes: true,
        });
        let stranger = "127.0.0.2".parse().unwrap();
        let admit = |from, channel| c.admit(&c.topology, from, None, stranger, channel);
        let client = Peer::Client(failgroup_model::ClientId(1));
        for from in [Peer::Master, Peer::Server(ServerId(0)), Peer::Admin, client] {
            assert!(matches!(admit(from, Channel::Plain), Err(Refusal::PlainText)), "{from:?}");
        }
        for from in [Peer::Master, Peer::Server(ServerId(0))] {
            assert!(matches!(admit(from, Channel::Tls), Err(Refusal::NoCertificate)), "{from:?}");
            assert!(admit(from, Channel::Certified).is_ok(), "a certificate admits a node from any address");
        }
        assert!(admit(Peer::Admin, Channel::Tls).is_ok() && admit(client, Channel::Tls).is_ok());
    }
}
