//! Helpers of the end-to-end tests: a local cluster of real processes
//! started with `failgroup dev` on loopback, and a minimal RESP connection.

pub mod core;
pub mod history;

use failgroup::resp::{self, Reply};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A command for the `failgroup` binary whose process is killed if the
/// test process dies first (an aborted test leaves no cluster behind).
pub fn failgroup_command() -> Command {
    let mut cmd = Command::new(binary());
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// Moves the calling thread into network namespace `ns` (made by `ip netns
/// add`); other threads stay where they are.
pub fn enter_netns(ns: &str) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("the namespace's file");
    // SAFETY: setns on a file descriptor we hold open; affects this thread only.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// The `failgroup` binary of this build.
pub fn binary() -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("failgroup");
    assert!(bin.exists(), "{} is missing: run the tests with `cargo test --workspace`", bin.display());
    bin
}

/// The nodes' log level: `FAILGROUP_TEST_LOG`, else warnings only.
fn log_level() -> String {
    std::env::var("FAILGROUP_TEST_LOG").unwrap_or_else(|_| "warn".into())
}

/// A fresh directory for one cluster's config and database.
fn fresh_dir(port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("failgroup-test-{port}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The database under a test cluster: SQLite (a file in the cluster's
/// directory), or with `FAILGROUP_TEST_STORE=postgres` a fresh database per
/// cluster on the PostgreSQL server of `FAILGROUP_TEST_PG`.
#[derive(Clone, Debug)]
pub enum TestStore {
    Sqlite,
    Postgres(failgroup::store::postgres::protocol::PgUrl),
}

impl TestStore {
    /// The store for a cluster whose master listens on `port`.
    pub fn for_port(port: u16) -> TestStore {
        match std::env::var("FAILGROUP_TEST_STORE").as_deref() {
            Err(_) | Ok("sqlite") => TestStore::Sqlite,
            Ok("postgres") => TestStore::Postgres(
                failgroup::store::postgres::protocol::test_database(&format!("fg_t{port}"))
                    .expect("FAILGROUP_TEST_STORE=postgres needs FAILGROUP_TEST_PG (tests/scripts/postgres.sh)"),
            ),
            Ok(other) => panic!("FAILGROUP_TEST_STORE={other:?}: expected sqlite or postgres"),
        }
    }

    /// Whether the tests run on PostgreSQL (`FAILGROUP_TEST_STORE=postgres`).
    pub fn postgres_selected() -> bool {
        std::env::var("FAILGROUP_TEST_STORE").as_deref() == Ok("postgres")
    }

    /// The config's `store` value.
    pub fn url(&self) -> String {
        match self {
            TestStore::Sqlite => "sqlite:data.db".into(),
            TestStore::Postgres(u) => u.to_string(),
        }
    }

    /// Whether the store has applied the write with this request id.
    pub fn applied(&self, dir: &std::path::Path, client: u64, seq: u64) -> bool {
        match self {
            TestStore::Sqlite => {
                let db = failgroup::store::sqlite::open(&dir.join("data.db")).expect("open the store");
                let n: i64 = db
                    .query_row(
                        "SELECT count(*) FROM applied WHERE client = ?1 AND seq = ?2",
                        [client as i64, seq as i64],
                        |row| row.get(0),
                    )
                    .expect("query applied");
                n > 0
            }
            TestStore::Postgres(u) => {
                use failgroup::store::postgres::protocol::{Param, PgConn};
                let mut c = PgConn::connect(u).expect("connect to the store");
                let rows = c
                    .query(
                        "SELECT 1::int8 FROM failgroup_applied WHERE client = $1 AND seq = $2",
                        &[Param::Int(client as i64), Param::Int(seq as i64)],
                    )
                    .expect("query applied");
                !rows.is_empty()
            }
        }
    }

    /// Holds the store's write lock for `hold`: every server's store
    /// commands wait meanwhile (a slow store).
    pub fn hold_write_lock(&self, dir: &std::path::Path, hold: Duration) {
        match self {
            TestStore::Sqlite => {
                let db = failgroup::store::sqlite::open(&dir.join("data.db")).expect("open the store");
                db.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
                std::thread::sleep(hold);
                db.execute_batch("COMMIT").expect("release it");
            }
            TestStore::Postgres(u) => {
                // PostgreSQL may pick this transaction as a deadlock's
                // victim (a server's transaction waited on it while it
                // waited on that one's row): the fault is tried again.
                let mut c = failgroup::store::postgres::protocol::PgConn::connect(u).expect("connect to the store");
                for attempt in 1.. {
                    match c.batch("BEGIN; LOCK TABLE failgroup_kv, failgroup_rights IN ACCESS EXCLUSIVE MODE") {
                        Ok(_) => break,
                        Err(e) if attempt < 5 => {
                            let _ = c.batch("ROLLBACK");
                            eprintln!("slow store: the tables' locks not taken ({e:?}); again");
                        }
                        Err(e) => panic!("take the tables' locks, 5 tries: {e:?}"),
                    }
                }
                std::thread::sleep(hold);
                c.batch("COMMIT").expect("release them");
            }
        }
    }
}

impl TestStore {
    /// Whether a writer could take the store's write lock within 300 ms:
    /// false while a paused process holds it inside a transaction.
    pub fn write_lock_free(&self, dir: &std::path::Path) -> bool {
        match self {
            TestStore::Sqlite => {
                let Ok(db) = rusqlite::Connection::open(dir.join("data.db")) else { return false };
                if db.busy_timeout(Duration::from_millis(300)).is_err() {
                    return false;
                }
                let free = db.execute_batch("BEGIN IMMEDIATE").is_ok();
                let _ = db.execute_batch("ROLLBACK");
                free
            }
            TestStore::Postgres(u) => {
                let Ok(mut c) = failgroup::store::postgres::protocol::PgConn::connect(u) else { return false };
                let free = c
                    .batch(
                        "BEGIN; SET LOCAL lock_timeout = '300ms'; \
                         LOCK TABLE failgroup_kv, failgroup_rights IN EXCLUSIVE MODE",
                    )
                    .is_ok();
                let _ = c.batch("ROLLBACK");
                free
            }
        }
    }
}

/// A cluster started by `failgroup dev`, stopped when dropped.
pub struct Cluster {
    /// `failgroup dev`, or `None` when the test started the nodes itself.
    dev: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    pub store: TestStore,
    /// Server name -> (address, pid) as `dev` printed them.
    pub servers: Vec<(String, String, u32)>,
    /// Servers restarted by the test (not children of `dev`).
    restarted: Vec<Child>,
    master_pid: u32,
    /// Network namespace of each node (master first), if any.
    netns: Vec<Option<String>>,
    master_addr: String,
    lines: mpsc::Receiver<String>,
    /// Environment variables each server gets whenever it (re)starts.
    server_env: Vec<(String, String, String)>,
    /// Standby masters `dev` started: address and pid.
    pub standby_masters: Vec<(String, u32)>,
    /// The lines `dev` printed up to `ready`.
    pub started: Vec<String>,
}

impl Cluster {
    fn new(
        dev: Option<Child>,
        dir: PathBuf,
        port: u16,
        lines: mpsc::Receiver<String>,
        netns: Vec<Option<String>>,
        master_addr: String,
        store: TestStore,
    ) -> Cluster {
        let (servers, restarted) = (Vec::new(), Vec::new());
        let server_env = Vec::new();
        let standby_masters = Vec::new();
        Cluster {
            dev,
            dir,
            port,
            store,
            servers,
            restarted,
            master_pid: 0,
            netns,
            master_addr,
            lines,
            server_env,
            standby_masters,
            started: Vec::new(),
        }
    }

    /// Starts `servers` servers in `groups` groups, master on `port`.
    pub fn start(port: u16, servers: u16, groups: u16) -> Cluster {
        let dir = fresh_dir(port);
        let store = TestStore::for_port(port);
        let mut dev = failgroup_command()
            .args(["dev", "--port", &port.to_string(), "--servers", &servers.to_string()])
            .args(["--groups", &groups.to_string(), "--store", &store.url()])
            // Above Linux's ephemeral ports (32768-60999), so that no test's
            // outgoing connection holds a node's metrics port.
            .args(["--metrics-port", &(port as u32 + 40_000).to_string(), "--data"])
            .arg(&dir)
            .env("RUST_LOG", log_level())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start failgroup dev");
        let out = dev.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut cluster = Cluster::new(Some(dev), dir, port, lines, Vec::new(), format!("127.0.0.1:{port}"), store);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = cluster.lines.recv_timeout(left).expect("failgroup dev printed `ready` in time");
            cluster.started.push(line.clone());
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["ready"] => break,
                ["server", name, addr, "pid", pid, ..] => {
                    cluster.servers.push((name.to_string(), addr.to_string(), pid.parse().expect("pid")));
                }
                // The first master line is the acting master's, the next a standby's.
                ["master", _, _, "pid", pid, ..] if cluster.master_pid == 0 => {
                    cluster.master_pid = pid.parse().expect("pid")
                }
                ["master", _, addr, "pid", pid, ..] => {
                    cluster.standby_masters.push((addr.to_string(), pid.parse().expect("pid")))
                }
                _ => {}
            }
        }
        assert_eq!(cluster.servers.len(), servers as usize, "one line per server");
        cluster
    }

    /// Starts `servers` servers (one group) and the master as separate
    /// processes from a config: `top` and `extra` are TOML placed before
    /// `[cluster]` (e.g. `mode`, `requirepass`, `secret`, a `[limits]` table).
    pub fn with_config(port: u16, servers: u16, top: &str, extra: &str) -> Cluster {
        for p in port..=port + servers {
            assert!(
                std::net::TcpListener::bind(("127.0.0.1", p)).is_ok(),
                "port {p} is in use: a cluster of an earlier run may still be up"
            );
        }
        let hosts = vec![("127.0.0.1".to_string(), None); servers as usize + 1];
        Cluster::on_hosts(port, &hosts, top, extra)
    }

    /// As `with_config`, with each node (master first, then s1..) on its own
    /// host address and port `port + i`, optionally inside a network namespace.
    pub fn on_hosts(port: u16, hosts: &[(String, Option<String>)], top: &str, extra: &str) -> Cluster {
        Cluster::on_hosts_with(port, hosts, top, extra, TestStore::for_port(port))
    }

    /// As `on_hosts`, on the given store.
    pub fn on_hosts_with(
        port: u16,
        hosts: &[(String, Option<String>)],
        top: &str,
        extra: &str,
        store: TestStore,
    ) -> Cluster {
        let servers = hosts.len() - 1;
        let dir = fresh_dir(port);
        std::fs::create_dir_all(&dir).expect("test dir");
        let names: Vec<String> = (1..=servers).map(|i| format!("s{i}")).collect();
        let addr = |i: usize| format!("{}:{}", hosts[i].0, port + i as u16);
        let mut toml = format!("master = \"{}\"\nstore = \"{}\"\n{top}\n{extra}\n[cluster]\n", addr(0), store.url());
        for (i, n) in names.iter().enumerate() {
            toml += &format!("[[cluster.servers]]\nname = \"{n}\"\naddr = \"{}\"\n", addr(i + 1));
        }
        toml += &format!("[[cluster.groups]]\nname = \"g1\"\nmembers = {names:?}\n");
        std::fs::write(dir.join("cluster.toml"), toml).expect("config");
        let (_tx, lines) = mpsc::channel();
        let netns = hosts.iter().map(|h| h.1.clone()).collect();
        let mut cluster = Cluster::new(None, dir, port, lines, netns, addr(0), store);
        for (i, n) in names.iter().enumerate() {
            cluster.servers.push((n.clone(), addr(i + 1), 0));
            cluster.restart(n);
        }
        cluster.start_master();
        cluster
    }

    /// Starts the master from the config (after `with_config`).
    pub fn start_master(&mut self) {
        let master = self
            .node_command(0)
            .args(["master", "--config"])
            .arg(self.dir.join("cluster.toml"))
            .env("RUST_LOG", log_level())
            .spawn()
            .expect("start the master");
        self.master_pid = master.id();
        self.restarted.push(master);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.master()).is_err() {
            assert!(Instant::now() < deadline, "the master did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        // What answered is this process (not one still going away).
        let exited = self.restarted.last_mut().and_then(|c| c.try_wait().ok().flatten());
        assert!(exited.is_none(), "the master exited at start: {exited:?}");
    }

    /// `kill -9` of the master (started by `with_config` or `dev`).
    pub fn kill_master(&mut self) {
        self.kill_pid(self.master_pid);
    }

    /// Sends a signal (STOP, CONT, ...) to a server.
    pub fn signal(&mut self, name: &str, sig: &str) {
        let pid = self.servers.iter().find(|s| s.0 == name).map(|s| s.2).expect("server name");
        let status = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().expect("kill");
        assert!(status.success(), "kill -{sig} {pid}");
    }

    /// Pauses a server (SIGSTOP) at a moment it holds no store lock. A
    /// server paused inside a store transaction holds the store's write
    /// lock until it resumes, and every other node's store writes wait for
    /// it (docs/DEPLOYMENT.md); a test of what the others do meanwhile
    /// pauses it between transactions. Tries 40 times.
    pub fn pause(&mut self, name: &str) {
        for attempt in 0..40u64 {
            self.signal(name, "STOP");
            if self.store.write_lock_free(&self.dir) {
                return;
            }
            self.signal(name, "CONT");
            std::thread::sleep(Duration::from_millis(7 + attempt * 13 % 50));
        }
        panic!("{name} held the store's write lock at each of 40 pauses");
    }

    pub fn addr(&self, name: &str) -> String {
        self.servers.iter().find(|s| s.0 == name).map(|s| s.1.clone()).expect("server name")
    }

    /// Waits (at most 20 s) until every server serves exactly the slots it
    /// owns: a starting server takes its rights a batch at a time, and on
    /// a loaded machine with PostgreSQL that takes more than a second.
    pub fn wait_serving_own_slots(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for (name, addr, _) in &self.servers {
            let mut r = Resp::connect(addr);
            loop {
                let owned = info_field(&mut r, "failgroup", "slots_owned");
                let served = info_field(&mut r, "failgroup", "slots_served");
                if owned.is_some() && owned == served {
                    break;
                }
                assert!(Instant::now() < deadline, "{name} serves {served:?} slots of its {owned:?} after 20 s");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn master(&self) -> String {
        self.master_addr.clone()
    }

    /// The command for node `i` (0: master), inside its namespace if any.
    fn node_command(&self, i: usize) -> Command {
        match self.netns.get(i).cloned().flatten() {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &ns]).arg(binary());
                // SAFETY: prctl is async-signal-safe and touches no memory of ours.
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                cmd
            }
            None => failgroup_command(),
        }
    }

    /// `kill -9` of a server; returns once the process is gone (its port
    /// free), so that a restart right after cannot find the old one still
    /// listening.
    pub fn kill9(&mut self, name: &str) {
        let pid = self.servers.iter().find(|s| s.0 == name).map(|s| s.2).expect("server name");
        self.kill_pid(pid);
    }

    /// Stops a server gracefully (SIGTERM: it drains) and waits until its
    /// process has exited.
    pub fn drain(&mut self, name: &str) {
        let pid = self.servers.iter().find(|s| s.0 == name).map(|s| s.2).expect("server name");
        self.signal(name, "TERM");
        self.wait_gone(pid);
    }

    /// Waits (at most 10 s) until process `pid` has exited.
    fn wait_gone(&mut self, pid: u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ours = self.restarted.iter_mut().find(|c| c.id() == pid);
            let gone = match ours {
                Some(child) => child.try_wait().ok().flatten().is_some(),
                // A child of `dev`: gone, or a zombie `dev` has not reaped
                // yet whose threads are all gone too (the first thread is a
                // zombie while the others still exit and hold its sockets:
                // a master restarted then found its port in use).
                None => std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                    let zombie = s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'));
                    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
                    zombie && threads <= 1
                }),
            };
            if gone {
                return;
            }
            assert!(Instant::now() < deadline, "process {pid} did not exit within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Restarts a server from the config `dev` wrote.
    pub fn restart(&mut self, name: &str) {
        let index = self.servers.iter().position(|s| s.0 == name).map_or(1, |i| i + 1);
        let child = self
            .node_command(index)
            .args(["server", "--config"])
            .arg(self.dir.join("cluster.toml"))
            .args(["--id", name])
            .env("RUST_LOG", log_level())
            .envs(self.server_env.iter().filter(|e| e.0 == name).map(|e| (&e.1, &e.2)))
            .spawn()
            .expect("restart a server");
        if let Some(s) = self.servers.iter_mut().find(|s| s.0 == name) {
            s.2 = child.id();
        }
        self.restarted.push(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.addr(name)).is_err() {
            assert!(Instant::now() < deadline, "{name} did not come back");
            let exited = self.restarted.last_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none(), "{name} exited at start: {exited:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A copy of the cluster's config (`twin.toml`) in which server `name`
    /// has the address `addr` and no metrics address (the first process
    /// of the name holds it): a second process of the name, for
    /// `spawn_server`.
    pub fn twin_config(&self, name: &str, addr: &str) -> std::path::PathBuf {
        let text = std::fs::read_to_string(self.dir.join("cluster.toml")).expect("config");
        let mut table = String::new();
        let mut out = String::new();
        for line in text.replace(&self.addr(name), addr).lines() {
            if line.starts_with('[') {
                table = line.trim().to_string();
            }
            let key = line.split('=').next().unwrap_or("").trim().trim_matches('"');
            if !(table == "[metrics.servers]" && key == name) {
                out += line;
                out.push('\n');
            }
        }
        let path = self.dir.join("twin.toml");
        std::fs::write(&path, out).expect("twin config");
        path
    }

    /// Starts one more server process, named `name`, from the config at
    /// `config` (e.g. a copy with another address), with extra environment
    /// variables; waits until it listens on `addr`. Returns its pid. The
    /// process is stopped with the cluster.
    pub fn spawn_server(&mut self, name: &str, config: &std::path::Path, addr: &str, env: &[(&str, &str)]) -> u32 {
        let mut cmd = failgroup_command();
        cmd.args(["server", "--config"]).arg(config).args(["--id", name]).env("RUST_LOG", log_level());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start a server");
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            let exited = child.try_wait().ok().flatten();
            assert!(exited.is_none(), "{name} ({addr}) exited at start: {exited:?}");
            assert!(Instant::now() < deadline, "{name} ({addr}) did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.restarted.push(child);
        pid
    }

    /// From now on, `name` (re)starts with these environment variables.
    pub fn set_server_env(&mut self, name: &str, env: &[(&str, &str)]) {
        self.server_env.retain(|e| e.0 != name);
        self.server_env.extend(env.iter().map(|(k, v)| (name.to_string(), k.to_string(), v.to_string())));
    }

    /// `kill -9` of a process the cluster started (e.g. by `spawn_server`),
    /// waiting until it is gone.
    pub fn kill_pid(&mut self, pid: u32) {
        let status = Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill");
        assert!(status.success(), "kill -9 {pid}");
        self.wait_gone(pid);
    }

    /// Restarts a server from the config with extra environment variables
    /// (e.g. libfaketime's).
    pub fn restart_with_env(&mut self, name: &str, env: &[(&str, &str)]) {
        let addr = self.addr(name);
        let config = self.dir.join("cluster.toml");
        let pid = self.spawn_server(name, &config, &addr, env);
        if let Some(s) = self.servers.iter_mut().find(|s| s.0 == name) {
            s.2 = pid;
        }
    }

    /// Lines `dev` printed since the last call.
    pub fn output(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.restarted {
            let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).status();
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(dev) = self.dev.as_mut() {
            let _ = Command::new("kill").args(["-TERM", &dev.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while dev.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = dev.kill();
            let _ = dev.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A RESP connection with a read timeout.
pub struct Resp {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Resp {
    pub fn connect(addr: &str) -> Resp {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
        Resp { stream, buf: Vec::new() }
    }

    /// As `connect`, an error instead of a panic where nothing listens.
    pub fn try_connect(addr: &str) -> std::io::Result<Resp> {
        let addr: std::net::SocketAddr = addr.parse().map_err(std::io::Error::other)?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        Ok(Resp { stream, buf: Vec::new() })
    }

    /// Sends one command and reads its reply.
    pub fn cmd(&mut self, args: &[&[u8]]) -> Reply {
        let mut out = Vec::new();
        resp::encode_command(&mut out, args);
        self.stream.write_all(&out).expect("send");
        self.read()
    }

    /// Sends one command and reads its reply; an error where the
    /// connection is lost (or the reply is not in within the read timeout)
    /// instead of a panic.
    pub fn try_cmd(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        let mut out = Vec::new();
        resp::encode_command(&mut out, args);
        self.stream.write_all(&out)?;
        self.next_reply()?.ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into())
    }

    /// `cmd` with text arguments split on spaces.
    pub fn run(&mut self, line: &str) -> Reply {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.cmd(&args)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one reply; panics on a timeout or a closed connection.
    pub fn read(&mut self) -> Reply {
        self.try_read().expect("a reply")
    }

    /// Whether the server closes the connection within `d` (without
    /// sending anything more).
    pub fn closed_within(&mut self, d: Duration) -> bool {
        self.stream.set_read_timeout(Some(d)).expect("timeout");
        let mut chunk = [0u8; 1024];
        let closed = matches!(self.stream.read(&mut chunk), Ok(0) | Err(_)) && self.buf.is_empty();
        let timed_out = matches!(self.stream.read(&mut chunk), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        self.stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
        closed && !timed_out
    }

    /// Reads one reply; `None` if the server closed the connection.
    pub fn try_read(&mut self) -> Option<Reply> {
        self.next_reply().unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    /// The next reply; `Ok(None)` once the server closed the connection.
    fn next_reply(&mut self) -> std::io::Result<Option<Reply>> {
        loop {
            if let Some((r, used)) = resp::decode_reply(&self.buf).expect("a well-formed reply") {
                self.buf.drain(..used);
                return Ok(Some(r));
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                // A signal to the test process (a child stopped or
                // continued by the test) interrupts the read: read again.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

pub fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(s.as_bytes().to_vec()))
}

pub fn ok() -> Reply {
    Reply::Simple("OK".into())
}

/// One field of an INFO reply.
pub fn info_field(r: &mut Resp, section: &str, field: &str) -> Option<String> {
    let Reply::Bulk(Some(text)) = r.run(&format!("INFO {section}")) else { return None };
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
}

/// A TCP connection to `dst` from the loopback address `src` (e.g.
/// `127.0.0.2`): a host that is not in the cluster's topology.
pub fn connect_from(src: std::net::Ipv4Addr, dst: &str) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let dst: std::net::SocketAddrV4 = dst.parse().map_err(|e| std::io::Error::other(format!("{dst}: {e}")))?;
    let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; the
    // addresses live on the stack for the duration of each call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(src, 0);
        if libc::bind(fd, &local as *const libc::sockaddr_in as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sockaddr(*dst.ip(), dst.port());
        if libc::connect(fd, &remote as *const libc::sockaddr_in as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(stream)
    }
}

/// Opens a node connection from `src` to `dst` and says hello as `from`;
/// returns the connection and the node's first answer.
pub fn node_hello(
    src: std::net::Ipv4Addr,
    dst: &str,
    from: failgroup::net::wire::Peer,
    secret: Option<&str>,
) -> (TcpStream, Option<failgroup::net::wire::Msg>) {
    use failgroup::net::wire::{self, Msg};
    let mut s = connect_from(src, dst).unwrap_or_else(|e| panic!("connect {src} -> {dst}: {e}"));
    s.write_all(&wire::PREAMBLE).expect("preamble");
    s.write_all(&wire::encode(&Msg::Hello { from, secret: secret.map(str::to_string) })).expect("hello");
    let answer = read_node_msg(&mut s);
    (s, answer)
}

/// One node-protocol message, or `None` if the connection closed or went
/// silent for the read timeout.
pub fn read_node_msg(s: &mut TcpStream) -> Option<failgroup::net::wire::Msg> {
    let mut buf = Vec::new();
    loop {
        if let Ok(Some((msg, _))) = failgroup::net::wire::decode(&buf, failgroup::net::wire::MAX_FRAME) {
            return Some(msg);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// libfaketime, if installed (Debian's faketime package).
pub fn libfaketime() -> Option<String> {
    ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_string)
}
