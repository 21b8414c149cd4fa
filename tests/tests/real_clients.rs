//! Real Redis clients, unmodified, at their defaults: redis-py (6 or
//! newer: RESP3 where it defaults to it, and RESP2) against every server,
//! its pipelines with and without transactions, and the cluster clients
//! (redis-py's `RedisCluster`, ioredis' `Cluster`) through a `kill -9` and
//! restart of a server under load, checking every read against the last
//! acknowledged write of its key (one writer per key).
//!
//! The interpreters come from `FAILGROUP_PYTHON` (a Python whose `redis`
//! module is redis-py 6 or newer; `python3` by default) and
//! `FAILGROUP_NODE_PATH` (a `node_modules` holding ioredis). Without them
//! the tests are skipped, saying so; `FAILGROUP_REQUIRE_CLIENTS=1` (CI)
//! makes their absence a failure.

use failgroup_tests::Cluster;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn required() -> bool {
    std::env::var_os("FAILGROUP_REQUIRE_CLIENTS").is_some()
}

/// A Python with redis-py 6 or newer, if there is one.
fn python() -> Option<String> {
    let py = std::env::var("FAILGROUP_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import redis,sys; sys.exit(int(redis.__version__.split('.')[0]) < 6)"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok || !required(), "FAILGROUP_REQUIRE_CLIENTS is set but {py} has no redis-py 6 or newer");
    if !ok {
        eprintln!("note: {py} has no redis-py 6 or newer: skipped");
    }
    ok.then_some(py)
}

fn port(cluster: &Cluster, name: &str) -> String {
    cluster.addr(name).rsplit(':').next().expect("a port").to_string()
}

/// Runs `script` to its end; its output must end with `ok`.
fn run_to_end(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let text = stdout.clone() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.trim_end().ends_with("ok"), "{what}: {text}");
    text
}

const STANDALONE: &str = r#"
import sys, redis
port, proto = int(sys.argv[1]), sys.argv[2]
kw = {} if proto == "default" else {"protocol": int(proto)}
r = redis.Redis(port=port, client_name="t", **kw)
tag = f"{{{port}{proto}}}"
k = lambda n: f"{tag}{n}"
assert r.ping()
assert r.set(k("s"), b"\x00bin\r\n") and r.get(k("s")) == b"\x00bin\r\n"
assert r.set(k("s"), "v2", get=True) == b"\x00bin\r\n"
assert r.set(k("s"), "v3", keepttl=True) and r.ttl(k("s")) == -1
assert r.getdel(k("s")) == b"v3" and r.get(k("s")) is None
assert r.set(k("e"), "1", ex=100) and r.ttl(k("e")) in (99, 100)
assert r.getex(k("e"), persist=True) == b"1" and r.ttl(k("e")) == -1
assert r.expire(k("e"), 50, nx=True) and not r.expire(k("e"), 60, nx=True)
assert r.expire(k("e"), 80, gt=True) and not r.expire(k("e"), 90, lt=True)
assert r.expiretime(k("e")) > 1_700_000_000 and r.persist(k("e"))
assert r.expireat(k("e"), 4102444800) and r.pexpiretime(k("e")) == 4102444800000
assert r.append(k("a"), "ab") == 2 and r.append(k("a"), "cd") == 4 and r.strlen(k("a")) == 4
assert r.getrange(k("a"), 1, 2) == b"bc" and r.setrange(k("a"), 6, "x") == 7
assert r.incrbyfloat(k("f"), 1.5) == 1.5 and r.incr(k("i")) == 1 and r.decrby(k("i"), 3) == -2
assert r.type(k("a")) in ("string", b"string") and r.type(k("none")) in ("none", b"none")
assert r.mset({k("m1"): 1, k("m2"): 2}) and r.mget([k("m1"), k("m2"), k("m3")]) == [b"1", b"2", None]
assert r.exists(k("m1"), k("m2"), k("m3")) == 2 and r.touch(k("m1"), k("m3")) == 1
assert r.delete(k("m1"), k("m2")) == 2 and r.unlink(k("m1")) == 0
assert r.client_getname() in ("t", b"t")
# The rest of the commands served, each once.
assert r.setnx(k("n"), 1) and not r.setnx(k("n"), 2)
assert r.setex(k("x"), 100, "v") and r.psetex(k("y"), 100000, "v") and 0 < r.pttl(k("y")) <= 100000
assert r.pexpire(k("x"), 50000) and 0 < r.pttl(k("x")) <= 50000 and r.pexpireat(k("x"), 4102444800000)
assert r.set(k("at"), "v", exat=4102444800) and r.expiretime(k("at")) == 4102444800
assert r.set(k("at"), "v", pxat=4102444800123) and r.pexpiretime(k("at")) == 4102444800123
assert r.set(k("c"), 10) and r.incrby(k("c"), 5) == 15 and r.decr(k("c")) == 14
assert r.echo("hi") == b"hi" and r.client_id() > 0 and r.client_setname("t2")
assert "name=t2" in r.client_info().get("name", "") or r.client_info()["name"] == "t2"
assert any(c["name"] == "t2" for c in r.client_list())
assert r.config_get("maxclients")["maxclients"]
assert r.execute_command("SELECT", 0) in (True, b"OK", "OK")
assert r.execute_command("READONLY") and r.execute_command("READWRITE")
assert r.execute_command("CLUSTER", "KEYSLOT", "foo") == 12182
assert len(r.execute_command("CLUSTER", "SLOTS")) >= 1 and r.execute_command("CLUSTER", "MYID")
assert r.command_count() > 50 and "get" in r.command()
# Django's delete_pattern and Rails' delete_matched: SCAN with MATCH, then DEL.
for i in range(30):
    r.set(k(f"page:{i}"), i)
found = sorted(r.scan_iter(match=k("page:*"), count=7))
assert len(found) == 30 and found == sorted(r.keys(k("page:*"))), found
assert r.delete(*found) == 30 and r.keys(k("page:*")) == []
assert r.dbsize() >= 1
assert r.info("cluster")["cluster_enabled"] == 1
for transaction in (False, True):
    p = r.pipeline(transaction=transaction)
    for i in range(20):
        p.set(k(f"p{i}"), i)
        p.incr(k(f"p{i}"))
        p.get(k(f"p{i}"))
    out = p.execute()
    assert out[2::3] == [str(i + 1).encode() for i in range(20)], out
p = r.pipeline(transaction=True)
p.set(k("t"), 1).incr(k("t")).getdel(k("t"))
assert p.execute() == [True, 2, b"2"]
# Django's set_many: a transaction of SETs with expiry, here in one slot.
p = r.pipeline()
for i in range(5):
    p.set(k(f"dj{i}"), i, ex=300)
assert p.execute() == [True] * 5
# Hashes, and WRONGTYPE.
assert r.hset(k("h"), mapping={"a": 1, "b": 2}) == 2 and r.hset(k("h"), "a", 3) == 0
assert r.hget(k("h"), "a") == b"3" and r.hmget(k("h"), ["a", "z"]) == [b"3", None]
assert r.hgetall(k("h")) == {b"a": b"3", b"b": b"2"} and r.hlen(k("h")) == 2
assert r.hkeys(k("h")) == [b"a", b"b"] and r.hvals(k("h")) == [b"3", b"2"]
assert r.hexists(k("h"), "a") and not r.hexists(k("h"), "z") and r.hstrlen(k("h"), "a") == 1
assert r.hsetnx(k("h"), "c", 1) and not r.hsetnx(k("h"), "c", 2)
assert r.hincrby(k("h"), "c", 5) == 6 and r.hincrbyfloat(k("h"), "f", 1.5) == 1.5
assert dict(r.hscan_iter(k("h"), match="[ab]")) == {b"a": b"3", b"b": b"2"}
assert r.hdel(k("h"), "a", "z") == 1 and r.type(k("h")) in ("hash", b"hash")
try:
    r.get(k("h"))
    raise AssertionError("GET of a hash answered")
except redis.ResponseError as e:
    assert str(e).startswith("WRONGTYPE"), e
# Keys of one slot in one step.
assert r.msetnx({k("x1"): 1, k("x2"): 2}) and not r.msetnx({k("x2"): 3, k("x3"): 4})
assert r.rename(k("x1"), k("x4")) and r.get(k("x4")) == b"1" and not r.renamenx(k("x4"), k("x2"))
assert r.copy(k("x4"), k("x5")) and r.get(k("x5")) == b"1" and not r.copy(k("x4"), k("x5"))
# WATCH: redis-py's transaction helper, and a watched write aborting EXEC.
r.set(k("w"), 1)
def bump(pipe):
    v = int(pipe.get(k("w")))
    pipe.multi()
    pipe.set(k("w"), v + 1)
assert r.transaction(bump, k("w")) == [True] and r.get(k("w")) == b"2"
with r.pipeline() as pipe:
    pipe.watch(k("w"))
    r.set(k("w"), 10)
    pipe.multi()
    pipe.set(k("w"), 99)
    try:
        pipe.execute()
        raise AssertionError("EXEC applied after a watched write")
    except redis.WatchError:
        pass
assert r.get(k("w")) == b"10"
# Django's cache.clear().
assert r.flushdb() and r.dbsize() == 0 and r.get(k("w")) is None
# A bounded cache, set live, as a Redis user sets it; Django's TTL'd keys
# read back.
assert r.config_set("maxmemory", "512mb") and r.config_set("maxmemory-policy", "allkeys-lru")
mem = r.info("memory")
assert mem["maxmemory"] == 512 << 20 and mem["maxmemory_policy"] == "allkeys-lru", mem
assert mem["used_memory"] > 0 and r.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
assert r.info("stats")["evicted_keys"] == 0
r.set(k("ttl"), "v", ex=300)
assert [r.get(k("ttl")) for _ in range(3)] == [b"v"] * 3 and 0 < r.ttl(k("ttl")) <= 300
assert r.config_set("maxmemory", 0) and r.config_set("maxmemory-policy", "noeviction")
print("ok")
"#;

/// redis-py at its defaults (RESP3 from redis-py 8 on), and with RESP2
/// and RESP3 asked for, against every server: each command it sends.
#[test]
fn redis_py_standalone_on_every_server_in_both_protocols() {
    let Some(py) = python() else { return };
    let cluster = Cluster::start(21900, 3, 1);
    for server in ["s1", "s2", "s3"] {
        for proto in ["default", "2", "3"] {
            let mut cmd = Command::new(&py);
            cmd.args(["-c", STANDALONE, &port(&cluster, server), proto]);
            run_to_end(cmd, &format!("redis-py on {server}, protocol {proto}"));
        }
    }
}

/// Writes each key with an increasing counter and reads it back for a
/// while; prints how many operations ran, how many errors reached the
/// application through the client's retry policy and how many reads were
/// stale (a value older than the key's last acknowledged write).
const CLUSTER_LOAD: &str = r#"
import sys, time, redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
port, seconds = int(sys.argv[1]), float(sys.argv[2])
rc = redis.RedisCluster(host="127.0.0.1", port=port, socket_timeout=2,
                        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 20))
acked, maybe = {}, {}
ops = errors = stale = 0
end = time.time() + seconds
i = 0
while time.time() < end:
    key = f"load{i % 64}"
    i += 1
    n = acked.get(key, 0) + 1
    try:
        rc.set(key, n)
        acked[key] = n
    except redis.RedisError as e:
        errors += 1
        maybe[key] = n
        print("error:", repr(e), file=sys.stderr)
        continue
    try:
        got = int(rc.get(key))
        if got != acked[key] and got != maybe.get(key):
            stale += 1
            print(f"stale: {key} read {got}, acknowledged {acked[key]}", file=sys.stderr)
    except redis.RedisError as e:
        errors += 1
        print("error:", repr(e), file=sys.stderr)
    ops += 2
print(f"ops {ops} errors {errors} stale {stale}")
print("ok")
"#;

/// The counts a load script printed: operations, errors, stale reads.
fn counts(text: &str) -> (u64, u64, u64) {
    let line = text.lines().find(|l| l.starts_with("ops ")).unwrap_or_else(|| panic!("no counts in {text}"));
    let w: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (w[0], w[1], w[2])
}

/// Starts a load script, kills `s2` with SIGKILL under it, restarts it,
/// and checks what the script counted: it ran, with no error past the
/// client's retry policy and no stale read.
fn through_a_kill(cluster: &mut Cluster, mut load: Command, client: &str) {
    load.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child: Child = load.spawn().expect("start the load");
    std::thread::sleep(Duration::from_secs(3));
    cluster.kill9("s2");
    std::thread::sleep(Duration::from_secs(4));
    cluster.restart("s2");
    let out = child.wait_with_output().expect("the load ends");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("ok"), "load: {text}");
    let (ops, errors, stale) = counts(&text);
    eprintln!("{client}: {ops} operations, {errors} errors, {stale} stale reads");
    assert!(ops > 200, "{client}: the load ran: {text}");
    assert_eq!(stale, 0, "{client}: no stale read: {text}");
    assert_eq!(errors, 0, "{client}: no error beyond the client's retry policy: {text}");
}

/// redis-py's `RedisCluster` discovers the cluster (CLUSTER SLOTS, COMMAND)
/// and keeps working through a `kill -9` and restart of a server: no error
/// past its retry policy, no stale read. Its retries of a refused
/// connection follow one another with no pause (redis-py 8 applies no
/// backoff between cluster attempts), so they would be spent before the
/// master's verdict if CLUSTER SLOTS still named the dead server: a server
/// that has lost its link to a peer names another member for its slots.
#[test]
fn redis_py_cluster_client_through_a_kill_and_restart() {
    let Some(py) = python() else { return };
    let mut cluster = Cluster::start(21920, 3, 1);
    let mut load = Command::new(&py);
    load.args(["-c", CLUSTER_LOAD, &port(&cluster, "s1"), "14"]);
    through_a_kill(&mut cluster, load, "redis-py RedisCluster");
}

const IOREDIS_LOAD: &str = r#"
const Redis = require("ioredis");
const [port, seconds] = [Number(process.argv[1]), Number(process.argv[2])];
const rc = new Redis.Cluster([{ host: "127.0.0.1", port }], {
  clusterRetryStrategy: () => 100, retryDelayOnFailover: 200, retryDelayOnClusterDown: 200,
  maxRedirections: 50, redisOptions: { maxRetriesPerRequest: 40, connectTimeout: 1000 },
});
(async () => {
  const acked = {}, maybe = {};
  let ops = 0, errors = 0, stale = 0, i = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const key = `load${i++ % 64}`;
    const n = (acked[key] || 0) + 1;
    try { await rc.set(key, n); acked[key] = n; }
    catch (e) { errors++; maybe[key] = n; console.error("error:", e.message); continue; }
    try {
      const got = Number(await rc.get(key));
      if (got !== acked[key] && got !== maybe[key]) { stale++; console.error(`stale: ${key} ${got} ${acked[key]}`); }
    } catch (e) { errors++; console.error("error:", e.message); }
    ops += 2;
  }
  console.log(`ops ${ops} errors ${errors} stale ${stale}`);
  console.log("ok");
  rc.disconnect();
})();
"#;

/// ioredis' `Cluster` the same way.
#[test]
fn ioredis_cluster_client_through_a_kill_and_restart() {
    let modules = std::env::var("FAILGROUP_NODE_PATH").ok();
    let found = modules.as_ref().is_some_and(|m| std::path::Path::new(m).join("ioredis").is_dir());
    assert!(found || !required(), "FAILGROUP_REQUIRE_CLIENTS is set but FAILGROUP_NODE_PATH has no ioredis");
    let Some(modules) = modules.filter(|_| found) else {
        eprintln!("note: FAILGROUP_NODE_PATH names no node_modules with ioredis: skipped");
        return;
    };
    let mut cluster = Cluster::start(21940, 3, 1);
    let mut load = Command::new("node");
    load.env("NODE_PATH", &modules).args(["-e", IOREDIS_LOAD, &port(&cluster, "s1"), "14"]);
    through_a_kill(&mut cluster, load, "ioredis Cluster");
}
