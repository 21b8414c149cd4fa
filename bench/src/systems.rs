//! Starting, killing and restarting each system on loopback, and one
//! failover run per system.

use crate::load::{self, Plan, Resp, Sample, Target};
use std::fs;
#[cfg(target_os = "linux")]
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process of ours that dies with us and is killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    /// SIGTERM first (`failgroup dev` then stops its nodes), SIGKILL after 5 s.
    fn drop(&mut self) {
        // SAFETY: plain syscall on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(mut cmd: Command, log: &Path) -> Result<Proc, String> {
    let err = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let out = err.try_clone().map_err(|e| e.to_string())?;
    // A process the bench started dies with it (Linux only).
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    #[cfg(target_os = "linux")]
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let name = format!("{:?}", cmd.get_program());
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().map(Proc).map_err(|e| format!("{name}: {e}"))
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{what} did not come up within {timeout:?}"))
}

/// One INFO field of a RESP server, or None if it does not answer.
fn info_field(addr: &str, field: &str) -> Option<String> {
    let mut r = Resp::new(vec![addr.to_string()], 0);
    let text = match r.call(&[b"INFO", b"failgroup"]).ok()? {
        failgroup::resp::Reply::Bulk(Some(b)) => String::from_utf8(b).ok()?,
        _ => return None,
    };
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
}

fn pings(addr: &str) -> bool {
    Resp::new(vec![addr.to_string()], 0).call(&[b"PING"]).is_ok()
}

/// A system under test: how to reach it, and its victim.
trait System {
    fn target(&self, worker: u32) -> Result<Box<dyn Target>, String>;
    fn kill(&mut self) -> Result<(), String>;
    fn restart(&mut self) -> Result<(), String>;
    /// What keeping it up costs its store while idle, for the summary.
    fn idle_store_load(&self) -> Option<String> {
        None
    }
    /// The nodes a rolling restart goes through, in turn.
    fn nodes(&self) -> usize;
    /// Stops node `i` as an operator does before an upgrade, and returns
    /// once it has exited.
    fn stop_node(&mut self, i: usize) -> Result<(), String>;
    fn start_node(&mut self, i: usize) -> Result<(), String>;
    /// Node `i`, started again, is back in service.
    fn node_back(&self, i: usize) -> bool;
}

struct Failgroup {
    _dev: Proc,
    dir: PathBuf,
    exe: PathBuf,
    /// s1, s2, s3 addresses; s2 is the victim.
    addrs: Vec<String>,
    victim_pid: u32,
    /// Servers started again after a kill or a drain.
    restarted: Vec<Proc>,
    rust_client: bool,
}

impl Failgroup {
    fn start(dir: &Path, port: u16, rust_client: bool) -> Result<Failgroup, String> {
        let exe = sibling("failgroup")?;
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&exe);
        cmd.args(["dev", "--port", &port.to_string(), "--data"]).arg(dir).env("RUST_LOG", "warn");
        let dev = spawn(cmd, &dir.join("dev.log"))?;
        let log = dir.join("dev.log");
        wait_for("failgroup dev", Duration::from_secs(30), || {
            fs::read_to_string(&log).is_ok_and(|t| t.lines().any(|l| l == "ready"))
        })?;
        let text = fs::read_to_string(&log).map_err(|e| e.to_string())?;
        let mut addrs = Vec::new();
        let mut victim_pid = 0;
        for l in text.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            if let ["server", name, addr, "pid", pid, ..] = w[..] {
                addrs.push(addr.to_string());
                if name == "s2" {
                    victim_pid = pid.parse().map_err(|_| format!("bad pid line {l:?}"))?;
                }
            }
        }
        if addrs.len() < 3 || victim_pid == 0 {
            return Err(format!("failgroup dev printed no s1..s3: {text}"));
        }
        Ok(Failgroup { _dev: dev, dir: dir.to_path_buf(), exe, addrs, victim_pid, restarted: Vec::new(), rust_client })
    }
}

impl System for Failgroup {
    fn target(&self, worker: u32) -> Result<Box<dyn Target>, String> {
        if self.rust_client {
            let c = failgroup::Client::connect(&self.addrs[0]).map_err(|e| e.to_string())?;
            Ok(Box::new(c))
        } else {
            // Plain RESP to the survivors, which forward s2's keys.
            Ok(Box::new(Resp::new(vec![self.addrs[0].clone(), self.addrs[2].clone()], worker as usize)))
        }
    }
    fn kill(&mut self) -> Result<(), String> {
        // SAFETY: plain syscall on a pid `failgroup dev` printed.
        if unsafe { libc::kill(self.victim_pid as i32, libc::SIGKILL) } != 0 {
            return Err(format!("kill -9 {}: {}", self.victim_pid, std::io::Error::last_os_error()));
        }
        Ok(())
    }
    fn restart(&mut self) -> Result<(), String> {
        self.start_node(1)
    }
    fn nodes(&self) -> usize {
        self.addrs.len()
    }
    /// `failgroup admin drain`: it hands its slots over and exits.
    fn stop_node(&mut self, i: usize) -> Result<(), String> {
        let name = format!("s{}", i + 1);
        let out = Command::new(&self.exe)
            .args(["admin", "drain", "--config"])
            .arg(self.dir.join("cluster.toml"))
            .arg(&name)
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!("failgroup admin drain {name}: {}", String::from_utf8_lossy(&out.stderr).trim())),
        }
    }
    fn start_node(&mut self, i: usize) -> Result<(), String> {
        let name = format!("s{}", i + 1);
        let mut cmd = Command::new(&self.exe);
        cmd.arg("server").arg("--config").arg(self.dir.join("cluster.toml")).args(["--id", &name]);
        cmd.env("RUST_LOG", "warn");
        let log = self.dir.join(format!("{name}-restarted-{}.log", self.restarted.len()));
        self.restarted.push(spawn(cmd, &log)?);
        Ok(())
    }
    fn node_back(&self, i: usize) -> bool {
        let owned = info_field(&self.addrs[i], "slots_owned");
        owned.is_some() && owned == info_field(&self.addrs[i], "slots_served")
    }
    /// Each server's store commits per second over 3 s with no load: its
    /// lease renewals (one transaction each).
    fn idle_store_load(&self) -> Option<String> {
        let commits = || -> Option<Vec<u64>> {
            self.addrs.iter().map(|a| info_field(a, "store_commits")?.parse().ok()).collect()
        };
        let (before, at) = (commits()?, Instant::now());
        std::thread::sleep(Duration::from_secs(3));
        let (after, secs) = (commits()?, at.elapsed().as_secs_f64());
        let rates: Vec<String> =
            before.iter().zip(&after).map(|(b, a)| format!("{:.1}", a.saturating_sub(*b) as f64 / secs)).collect();
        Some(format!("idle store commits/s per server (lease renewals): {}", rates.join(", ")))
    }
}

struct Twemproxy {
    _proxy: Proc,
    backends: Vec<Option<Proc>>,
    dir: PathBuf,
    ports: [u16; 3],
}

fn redis(dir: &Path, port: u16) -> Result<Proc, String> {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    cmd.arg("--dir").arg(dir);
    let p = spawn(cmd, &dir.join(format!("redis-{port}.log")))?;
    let addr = format!("127.0.0.1:{port}");
    wait_for("redis-server", Duration::from_secs(10), || pings(&addr))?;
    Ok(p)
}

impl Twemproxy {
    fn start(dir: &Path, port: u16) -> Result<Twemproxy, String> {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let ports = [port, port + 1, port + 2];
        let backends = vec![Some(redis(dir, ports[1])?), Some(redis(dir, ports[2])?)];
        let yml = dir.join("nutcracker.yml");
        let conf = format!(
            "bench:\n  listen: 127.0.0.1:{}\n  hash: fnv1a_64\n  distribution: ketama\n  auto_eject_hosts: true\n  \
             server_retry_timeout: 2000\n  server_failure_limit: 1\n  timeout: 1000\n  redis: true\n  servers:\n   \
             - 127.0.0.1:{}:1\n   - 127.0.0.1:{}:1\n",
            ports[0], ports[1], ports[2]
        );
        fs::write(&yml, conf).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("nutcracker");
        cmd.arg("-c").arg(&yml);
        let proxy = spawn(cmd, &dir.join("nutcracker.log"))?;
        let addr = format!("127.0.0.1:{}", ports[0]);
        wait_for("nutcracker", Duration::from_secs(10), || pings(&addr))?;
        Ok(Twemproxy { _proxy: proxy, backends, dir: dir.to_path_buf(), ports })
    }
}

impl System for Twemproxy {
    fn target(&self, worker: u32) -> Result<Box<dyn Target>, String> {
        Ok(Box::new(Resp::new(vec![format!("127.0.0.1:{}", self.ports[0])], worker as usize)))
    }
    fn kill(&mut self) -> Result<(), String> {
        self.backends[1] = None; // SIGTERM in Drop (SIGKILL after 5 s)
        Ok(())
    }
    fn restart(&mut self) -> Result<(), String> {
        self.backends[1] = Some(redis(&self.dir, self.ports[2])?);
        Ok(())
    }
    fn nodes(&self) -> usize {
        self.backends.len()
    }
    /// SIGTERM (redis-server's own shutdown), waited for.
    fn stop_node(&mut self, i: usize) -> Result<(), String> {
        self.backends[i] = None;
        Ok(())
    }
    fn start_node(&mut self, i: usize) -> Result<(), String> {
        self.backends[i] = Some(redis(&self.dir, self.ports[i + 1])?);
        Ok(())
    }
    fn node_back(&self, i: usize) -> bool {
        pings(&format!("127.0.0.1:{}", self.ports[i + 1]))
    }
}

/// The binary `name` next to this one (the same `cargo build --release`).
fn sibling(name: &str) -> Result<PathBuf, String> {
    let mut p = std::env::current_exe().map_err(|e| e.to_string())?;
    p.pop();
    let bin = p.join(name);
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!("{} is missing: cargo build --release -p failgroup", bin.display()))
    }
}

struct Run {
    samples: Vec<Sample>,
    errors: Vec<String>,
    back_after_restart_ms: Option<u64>,
    /// A rolling restart: when the last node was back (and a second had
    /// passed), ms into the run.
    rolled_until_ms: Option<u64>,
}

/// Which failure a run goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One server killed (SIGKILL) at `--kill-at`, restarted at `--restart-at`.
    Kill,
    /// Every server in turn, from `--kill-at`: stopped as for an upgrade
    /// (failgroup: `failgroup admin drain`; redis-server: SIGTERM), started
    /// again, back in service, a second's pause, the next.
    RollingRestart,
    /// No fault: the same load on a fresh cluster. A rolling restart's
    /// failgroup rows are followed by one (`... no-roll`), judged over the
    /// roll's seconds: the noise its worst second is read against.
    Steady,
}

fn run(sys: &mut dyn System, plan: &Plan, scenario: Scenario) -> Result<Run, String> {
    load::preload(sys.target(0)?.as_mut())?;
    let targets = (0..plan.workers).map(|w| sys.target(w)).collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now() + Duration::from_millis(100);
    let per_sec = plan.rate as f64 / plan.workers as f64;
    let handles: Vec<_> = targets
        .into_iter()
        .enumerate()
        .map(|(w, t)| {
            let secs = plan.secs;
            std::thread::spawn(move || {
                std::thread::sleep(start.saturating_duration_since(Instant::now()));
                load::worker(t, start, secs, per_sec, 0x9e37_79b9_7f4a_7c15 ^ (w as u64 + 1))
            })
        })
        .collect();
    let until =
        |s: f64| std::thread::sleep((start + Duration::from_secs_f64(s)).saturating_duration_since(Instant::now()));
    until(plan.kill_at);
    let mut back_after_restart_ms = None;
    let mut rolled_until_ms = None;
    let back_within_run = |sys: &dyn System, i: usize| {
        while start.elapsed().as_secs_f64() < plan.secs {
            if sys.node_back(i) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    };
    match scenario {
        Scenario::Kill => {
            sys.kill()?;
            until(plan.restart_at);
            sys.restart()?;
            let restarted = Instant::now();
            if back_within_run(sys, 1) {
                back_after_restart_ms = Some(restarted.elapsed().as_millis() as u64);
            }
        }
        Scenario::RollingRestart => {
            // When each step began, on stderr (to read the CSV's spikes by).
            let at = || start.elapsed().as_millis();
            for i in 0..sys.nodes() {
                eprintln!("  {} ms: stopping node {}", at(), i + 1);
                sys.stop_node(i)?;
                eprintln!("  {} ms: node {} stopped, starting it", at(), i + 1);
                sys.start_node(i)?;
                if !back_within_run(sys, i) {
                    return Err(format!("node {} not back in service before the run ended", i + 1));
                }
                eprintln!("  {} ms: node {} back in service", at(), i + 1);
                std::thread::sleep(Duration::from_secs(1));
            }
            rolled_until_ms = Some(start.elapsed().as_millis() as u64);
        }
        Scenario::Steady => {}
    }
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for h in handles {
        let (s, e) = h.join().map_err(|_| "a load worker panicked".to_string())?;
        samples.extend(s);
        for e in e {
            if !errors.contains(&e) {
                errors.push(e);
            }
        }
    }
    Ok(Run { samples, errors, back_after_restart_ms, rolled_until_ms })
}

/// The summary's columns after the system's name: heading and width.
const KILL_COLUMNS: [(&str, usize); 8] = [
    ("ops", 7),
    ("errors", 6),
    ("misses", 6),
    ("base_p999", 9),
    ("worst_ms", 9),
    ("kill_recov_ms", 13),
    ("restart_recov_ms", 16),
    ("back_after_ms", 14),
];
const ROLL_COLUMNS: [(&str, usize); 9] = [
    ("ops", 7),
    ("errors", 6),
    ("misses", 6),
    ("base_p999", 9),
    ("roll_p999", 9),
    ("worst_1s_p999", 13),
    ("worst/base", 10),
    ("worst_ms", 9),
    ("rolled_ms", 9),
];

/// A rolling-restart row's cells (`ROLL_COLUMNS`); `rolled_ms` is `-` for
/// a control run.
fn roll_cells(s: &load::Summary, roll: &load::Rolling, rolled_ms: Option<u64>) -> [String; 9] {
    [
        s.ops.to_string(),
        s.errors.to_string(),
        s.misses.to_string(),
        format!("{:.2}", roll.baseline_p999_ms),
        format!("{:.2}", roll.rolling_p999_ms),
        format!("{:.2}", roll.worst_second_p999_ms),
        format!("{:.2}", roll.worst_second_p999_ms / roll.baseline_p999_ms.max(0.001)),
        format!("{:.1}", s.worst_ms),
        rolled_ms.map_or("-".into(), |ms| ms.to_string()),
    ]
}

/// One line of the summary: the name, then each cell right-aligned.
fn row(name: &str, cells: &[String], columns: &[(&str, usize)]) -> String {
    let mut line = format!("{name:<17}");
    for (cell, (_, width)) in cells.iter().zip(columns) {
        line += &format!(" {cell:>width$}");
    }
    line + "\n"
}

pub fn run_all(out: &Path, plan: &Plan, port: u16, only: &[String], scenario: Scenario) -> Result<(), String> {
    const NAMES: [&str; 3] = ["failgroup-client", "failgroup-resp", "twemproxy"];
    if let Some(bad) = only.iter().find(|o| !NAMES.contains(&o.as_str())) {
        return Err(format!("--only: unknown system {bad:?} (known: {})", NAMES.join(", ")));
    }
    fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let work = std::env::temp_dir().join(format!("failgroup-failover-{}", std::process::id()));
    let (prefix, columns, title) = match scenario {
        Scenario::Kill => (
            "failover",
            &KILL_COLUMNS[..],
            format!("failover window: kill at {} s, restart at {} s", plan.kill_at, plan.restart_at),
        ),
        Scenario::RollingRestart => {
            ("rolling", &ROLL_COLUMNS[..], format!("rolling restart: every node in turn from {} s", plan.kill_at))
        }
        Scenario::Steady => ("steady-failover", &KILL_COLUMNS[..], "no fault".to_string()),
    };
    let names: Vec<String> = columns.iter().map(|(n, _)| n.to_string()).collect();
    let mut summary = format!(
        "# {title}; {} ops/s, {} workers, {} s; 90% GET / 10% SET on {} keys\n{}",
        plan.rate,
        plan.workers,
        plan.secs,
        load::KEYS,
        row("system", &names, columns)
    );
    for (i, name) in NAMES.iter().enumerate().filter(|(_, n)| only.is_empty() || only.iter().any(|o| o == **n)) {
        eprintln!("failover: {name} ...");
        let dir = work.join(name);
        // Ports of their own: a system's sockets may linger after it stopped.
        let port = port + 10 * i as u16;
        let mut sys: Box<dyn System> = match *name {
            "failgroup-client" => Box::new(Failgroup::start(&dir, port, true)?),
            "failgroup-resp" => Box::new(Failgroup::start(&dir, port, false)?),
            _ => Box::new(Twemproxy::start(&dir, port)?),
        };
        let idle = sys.idle_store_load();
        let r = run(sys.as_mut(), plan, scenario)?;
        drop(sys);
        let b = load::buckets(&r.samples, plan.secs);
        let s = load::summarize(&r.samples, &b, plan);
        let mut csv = String::from("t_ms,ops_per_s,p50_ms,p99_ms,p999_ms,errors,misses\n");
        for x in &b {
            csv += &format!(
                "{},{},{:.3},{:.3},{:.3},{},{}\n",
                x.start_ms,
                x.ops as u64 * 1000 / load::BUCKET_MS,
                x.p50_ms,
                x.p99_ms,
                x.p999_ms,
                x.errors,
                x.misses
            );
        }
        let path = out.join(format!("{prefix}-{name}.csv"));
        fs::write(&path, csv).map_err(|e| format!("{}: {e}", path.display()))?;
        let back = r.back_after_restart_ms.map_or("never".into(), |ms| ms.to_string());
        if let Some(until) = r.rolled_until_ms {
            let kill_ms = (plan.kill_at * 1000.0) as u64;
            let roll = load::rolling(&r.samples, kill_ms, until);
            summary += &row(name, &roll_cells(&s, &roll, Some(until - kill_ms)), columns);
            if *name != "twemproxy" {
                // The control: a fresh cluster of the same kind, the same
                // load, nothing stopped, judged over the same seconds.
                let control = format!("{name}-no-roll");
                eprintln!("failover: {control} ...");
                let dir = work.join(&control);
                let mut sys = Failgroup::start(&dir, port + 5, *name == "failgroup-client")?;
                let c = run(&mut sys, plan, Scenario::Steady)?;
                drop(sys);
                let cs = load::summarize(&c.samples, &load::buckets(&c.samples, plan.secs), plan);
                let croll = load::rolling(&c.samples, kill_ms, until);
                summary += &row(&control.replace("failgroup-", ""), &roll_cells(&cs, &croll, None), columns);
                summary += &format!(
                    "  {name} worst second: {:.2}x the no-roll run's, roll_p999 {:.2}x\n",
                    roll.worst_second_p999_ms / croll.worst_second_p999_ms.max(0.001),
                    roll.rolling_p999_ms / croll.rolling_p999_ms.max(0.001),
                );
                for e in &c.errors {
                    summary += &format!("  {control} error: {e}\n");
                }
            }
        } else {
            let cells = [
                s.ops.to_string(),
                s.errors.to_string(),
                s.misses.to_string(),
                format!("{:.2}", s.baseline_p999_ms),
                format!("{:.1}", s.worst_ms),
                s.kill_recovery_ms.to_string(),
                s.restart_recovery_ms.to_string(),
                back,
            ];
            summary += &row(name, &cells, columns);
        }
        for e in &r.errors {
            summary += &format!("  {name} error: {e}\n");
        }
        if let Some(idle) = idle {
            summary += &format!("  {name} {idle}\n");
        }
    }
    let _ = fs::remove_dir_all(&work);
    print!("{summary}");
    let path = out.join(format!("{prefix}-summary.txt"));
    fs::write(&path, &summary).map_err(|e| format!("{}: {e}", path.display()))
}
