//! `failgroup dev`: a local cluster on loopback, each node its own child
//! process, sharing one SQLite file (or a PostgreSQL database, `--store`). A node that dies is reported and not
//! restarted, so a user can kill one and watch the failover; Ctrl-C or
//! SIGTERM stops them all.

use crate::config::{Config, FileConfig, Limits};
use crate::net::wire::{ClusterStatus, Msg, Peer};
use failgroup_model::{ClusterSpec, Mode};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub struct DevOptions {
    pub servers: u16,
    pub groups: u16,
    pub port: u16,
    pub data: PathBuf,
    pub mode: Mode,
    /// `sqlite:PATH` (relative to `data`) or `postgres://...`.
    pub store: String,
    /// The master's metrics port, the servers' on the ports after it; 0 for
    /// none.
    pub metrics_port: u16,
    /// The nodes' log lines (`--log-format`), passed on to each.
    pub log_format: crate::util::LogFormat,
}

/// The configuration `dev` writes: master on `port`, servers after it.
pub fn dev_config(o: &DevOptions) -> Result<Config, String> {
    if o.servers == 0 || o.servers > 64 {
        return Err("--servers: must be 1..=64".into());
    }
    if o.groups == 0 || o.groups > o.servers {
        return Err("--groups: must be 1..=servers".into());
    }
    if o.port as u32 + o.servers as u32 + 1 > 65535 {
        return Err("--port: the servers' and the standby master's ports would pass 65535".into());
    }
    if o.metrics_port as u32 + o.servers as u32 + 1 > 65535 {
        return Err("--metrics-port: the servers' and the standby master's metrics ports would pass 65535".into());
    }
    // One standby master, on the port after the servers'.
    let standby = format!("127.0.0.1:{}", o.port as u32 + o.servers as u32 + 1);
    let file = FileConfig {
        master: format!("127.0.0.1:{}", o.port),
        standby_masters: vec![standby.clone()],
        store: o.store.clone(),
        mode: o.mode,
        secret: None,
        requirepass: None,
        users: Vec::new(),
        timing: crate::config::default_timing(&o.store),
        limits: Limits::default(),
        cache: Default::default(),
        bind: Default::default(),
        metrics: dev_metrics(o, &standby),
        tls: None,
        cluster: ClusterSpec::local(o.servers, o.groups, o.port + 1, failgroup_model::SLOTS),
    };
    Config::new(file, o.data.clone()).map_err(|e| e.to_string())
}

/// The master's metrics on `--metrics-port`, server `i`'s on that plus `i`,
/// the standby's after the servers'; none when it is 0.
fn dev_metrics(o: &DevOptions, standby: &str) -> crate::config::MetricsConfig {
    let at = |i: u16| (o.metrics_port != 0).then(|| format!("127.0.0.1:{}", o.metrics_port + i));
    crate::config::MetricsConfig {
        master: at(0),
        servers: (1..=o.servers).filter_map(|i| Some((format!("s{i}"), at(i)?))).collect(),
        standby_masters: at(o.servers + 1).map(|m| (standby.to_string(), m)).into_iter().collect(),
    }
}

struct Node {
    role: &'static str,
    name: String,
    addr: String,
    /// Where it serves its metrics, if anywhere.
    metrics: Option<String>,
    child: Option<Child>,
}

pub fn run(o: DevOptions) -> Result<(), String> {
    let cfg = dev_config(&o)?;
    let addrs: Vec<String> = std::iter::once(cfg.file.master.clone())
        .chain(cfg.file.cluster.servers.iter().map(|s| s.addr.clone()))
        .chain(cfg.file.standby_masters.iter().cloned())
        .chain(cfg.file.metrics.master.iter().cloned())
        .chain(cfg.file.metrics.servers.values().cloned())
        .collect();
    for a in &addrs {
        if std::net::TcpListener::bind(a).is_err() {
            return Err(format!("{a} is in use: stop what listens there or pick another --port"));
        }
    }
    std::fs::create_dir_all(&o.data).map_err(|e| format!("--data {}: {e}", o.data.display()))?;
    // Create the database's schema once, before the servers share it. No
    // node of this cluster runs (its ports are free): a SQLite file in the
    // data directory left by a `dev` of other options is adopted for this
    // one; a PostgreSQL database, which others may share, is only checked.
    let own_file = matches!(cfg.store, crate::config::StoreUrl::Sqlite(_));
    cfg.open_store().and_then(|mut s| s.check_mark(&cfg.mark(), own_file)).map_err(|e| e.to_string())?;
    let path = o.data.join("cluster.toml");
    std::fs::write(&path, cfg.to_toml()).map_err(|e| format!("{}: {e}", path.display()))?;
    let stop = crate::util::stop_flag();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    println!("config {}", path.display());
    let mut nodes: Vec<Node> = Vec::new();
    // Servers first, up before the master, so that its first probes find them.
    for s in &cfg.file.cluster.servers {
        let child = spawn(&exe, &path, o.log_format, Role::Server(&s.name))?;
        let metrics = cfg.file.metrics.servers.get(&s.name).cloned();
        nodes.push(Node { role: "server", name: s.name.clone(), addr: s.addr.clone(), metrics, child: Some(child) });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    if let Err(e) = wait_up(&mut nodes, deadline, &stop) {
        shutdown(&mut nodes);
        return Err(e);
    }
    let child = spawn(&exe, &path, o.log_format, Role::Master(None))?;
    let (addr, metrics) = (cfg.file.master.clone(), cfg.file.metrics.master.clone());
    nodes.push(Node { role: "master", name: "-".into(), addr, metrics, child: Some(child) });
    if let Err(e) = wait_up(&mut nodes, deadline, &stop) {
        shutdown(&mut nodes);
        return Err(e);
    }
    // The standby starts once the first master holds the lease (else the
    // standby may win it: it takes over a lease after the acting master
    // stops renewing), and once every server holds the rights of the slots
    // it serves (`pending_slots` 0; `available` mode has no rights), so
    // that `ready` means serving: a starting server asks for its rights a
    // batch at a time, and a request before its slot's right waits for it.
    let options = crate::ClientOptions { secret: cfg.file.secret.clone(), tls: None };
    let serving = |s: &ClusterStatus| s.acting && s.pending_slots.is_none_or(|n| n == 0);
    while !fetch_status(&cfg.file.master, &options).is_ok_and(|s| serving(&s)) {
        if Instant::now() > deadline || stop.load(Ordering::Relaxed) || nodes.iter_mut().any(exited) {
            shutdown(&mut nodes);
            return Err("the master did not take the lease, or the servers their slots' rights, in time".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for addr in &cfg.file.standby_masters {
        let child = spawn(&exe, &path, o.log_format, Role::Master(Some(addr)))?;
        let metrics = cfg.file.metrics.standby_masters.get(addr).cloned();
        nodes.push(Node { role: "master", name: "-".into(), addr: addr.clone(), metrics, child: Some(child) });
    }
    if let Err(e) = wait_up(&mut nodes, deadline, &stop) {
        shutdown(&mut nodes);
        return Err(e);
    }
    for n in &nodes {
        let metrics = match (&n.metrics, n.role) {
            (Some(m), "master") => format!(" dashboard=http://{m}/ metrics=http://{m}/metrics"),
            (Some(m), _) => format!(" metrics=http://{m}/metrics"),
            (None, _) => String::new(),
        };
        println!("{} {} {} pid {}{metrics}", n.role, n.name, n.addr, n.child.as_ref().map_or(0, |c| c.id()));
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    while !stop.load(Ordering::Relaxed) {
        for n in &mut nodes {
            if let Some(status) = n.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let pid = n.child.take().map_or(0, |c| c.id());
                println!("{} {} {} pid {pid} exited ({status}); the others keep running", n.role, n.name, n.addr);
                let _ = std::io::stdout().flush();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    shutdown(&mut nodes);
    println!("stopped");
    Ok(())
}

/// Waits until every node accepts connections.
fn wait_up(nodes: &mut [Node], deadline: Instant, stop: &std::sync::atomic::AtomicBool) -> Result<(), String> {
    for n in nodes.iter_mut() {
        while TcpStream::connect(&n.addr).is_err() {
            if exited(n) {
                return Err(format!("{} {} exited at start (see the log above)", n.role, n.name));
            }
            if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
                return Err("the cluster did not come up in time".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

fn exited(n: &mut Node) -> bool {
    n.child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some())
}

/// What a child process of `dev` runs.
enum Role<'a> {
    Server(&'a str),
    /// The config's master, or a standby listening at the address.
    Master(Option<&'a str>),
}

fn spawn(exe: &Path, config: &Path, log_format: crate::util::LogFormat, role: Role) -> Result<Child, String> {
    let mut cmd = Command::new(exe);
    cmd.args(["--log-format", log_format.name()]);
    // If `dev` itself is killed, its nodes stop too (Linux; elsewhere they
    // outlive a killed `dev`).
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    #[cfg(target_os = "linux")]
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    match role {
        Role::Server(name) => cmd.args(["server", "--config"]).arg(config).args(["--id", name]),
        Role::Master(None) => cmd.args(["master", "--config"]).arg(config),
        Role::Master(Some(addr)) => cmd.args(["master", "--config"]).arg(config).args(["--listen", addr]),
    };
    cmd.spawn().map_err(|e| format!("starting {}: {e}", exe.display()))
}

/// SIGTERM to every live node, then SIGKILL to any still up after 5 s.
fn shutdown(nodes: &mut [Node]) {
    for c in nodes.iter().filter_map(|n| n.child.as_ref()) {
        // SAFETY: kill(2) on a child's pid has no memory effects.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for n in nodes.iter_mut() {
        let Some(c) = n.child.as_mut() else { continue };
        while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Asks the master for its view.
pub fn fetch_status(master: &str, options: &crate::ClientOptions) -> Result<ClusterStatus, StatusError> {
    let unreachable = |e: &dyn std::fmt::Display| StatusError::Unreachable(format!("master {master}: {e}"));
    let mut conn = options.link(master, Peer::Admin, Duration::from_secs(2)).map_err(|e| {
        match e.kind() {
            // Reached, and refused (a wrong secret) or not a master.
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidData => {
                StatusError::Answer(format!("master {master}: {e}"))
            }
            _ => unreachable(&e),
        }
    })?;
    conn.send(&Msg::StatusRequest).map_err(|e| unreachable(&e))?;
    match conn.recv().map_err(|e| unreachable(&e))? {
        Msg::Status(s) => Ok(*s),
        other => Err(StatusError::Answer(format!("master {master}: unexpected answer {other:?}"))),
    }
}

/// Why `failgroup status` printed nothing.
#[derive(Debug)]
pub enum StatusError {
    /// No connection to the master, or it closed before answering.
    Unreachable(String),
    /// The master refused us (a wrong secret) or answered something else.
    Answer(String),
}

impl StatusError {
    /// `failgroup status`'s exit code for it.
    pub fn exit_code(&self) -> u8 {
        match self {
            StatusError::Unreachable(_) => 3,
            StatusError::Answer(_) => 2,
        }
    }
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusError::Unreachable(m) | StatusError::Answer(m) => f.write_str(m),
        }
    }
}

/// The status as a table.
pub fn format_status(s: &ClusterStatus) -> String {
    let role = if s.acting { "acting master" } else { "standby master (its view is not kept)" };
    let mut o = format!("{role}, mode {}, view {}, topology version {}", s.mode, s.view_version, s.topology_version);
    match s.pending_slots {
        Some(0) => o.push_str(", every slot's right held by its server\n"),
        Some(n) => o.push_str(&format!(", {n} slots not yet held by their server (moving or failing over)\n")),
        None => o.push('\n'),
    }
    o.push_str(&format!(
        "{:<8} {:<22} {:<8} {:<8} {:>9} {:>6}  serves\n",
        "server", "address", "group", "state", "failovers", "rights"
    ));
    for srv in &s.servers {
        let slots: u32 = srv.serves.iter().map(|(a, b)| (b - a + 1) as u32).sum();
        let mut ranges: Vec<String> =
            srv.serves.iter().take(4).map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
        if srv.serves.len() > 4 {
            ranges.push(format!("... ({} ranges)", srv.serves.len()));
        }
        o.push_str(&format!(
            "{:<8} {:<22} {:<8} {:<8} {:>9} {:>6}  {slots} slots: {}\n",
            srv.name,
            srv.addr,
            srv.group,
            if srv.online { "online" } else { "offline" },
            srv.failovers,
            srv.rights.map_or("-".to_string(), |n| n.to_string()),
            if ranges.is_empty() { "-".into() } else { ranges.join(", ") },
        ));
    }
    o
}
