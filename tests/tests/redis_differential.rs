//! Differential conformance: the same scripts (every supported command,
//! edge cases and errors) against a real redis-server and against a
//! failgroup server, in RESP2 and in RESP3, reply for reply. The reference
//! is a one-node Redis Cluster (every slot on it), since failgroup answers
//! as Redis Cluster does (SELECT, CROSSSLOT, HELLO's mode).
//!
//! Skipped, saying so, without `redis-server`; `FAILGROUP_REQUIRE_REDIS=1`
//! (CI) makes its absence a failure.

use failgroup::resp::Reply;
use failgroup_tests::{Cluster, Resp};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Each script runs on a fresh connection; `k:` and `{t}` in it name keys
/// of that run alone. Keys of one command are in one slot (multi-key
/// commands across slots differ by design: see docs/CLIENTS.md).
const SCRIPTS: &[&[&str]] = &[
    // SET and its options, GET, GETDEL, GETEX.
    &[
        "SET k:a v",
        "GET k:a",
        "GET k:none",
        "SET k:a v2 NX",
        "SET k:a v3 XX GET",
        "SET k:a v4 NX GET",
        "SET k:none2 v NX GET",
        "GET k:a",
        "SET k:b 1 EX 0",
        "SET k:b 1 EX x",
        "SET k:b 1 PX -5",
        "SET k:b 1 EX 10 PX 10",
        "SET k:b 1 KEEPTTL EX 10",
        "SET k:b 1 NX XX",
        "SET k:b 1 FOO",
        "SET k:b",
        "SET k:b 5 EX 100",
        "GET k:b",
        "TTL k:b",
        "SET k:b 6 KEEPTTL",
        "TTL k:b",
        "SET k:b 7",
        "TTL k:b",
        "SET k:c x PXAT 4102444800000",
        "PEXPIRETIME k:c",
        "EXPIRETIME k:c",
        "SET k:c x EXAT 4102444800",
        "EXPIRETIME k:c",
        "EXPIRETIME k:none",
        "EXPIRETIME k:a",
        "PTTL k:none",
        "PTTL k:a",
        "GETDEL k:a",
        "GETDEL k:a",
        "GETDEL",
        "GETEX k:b EX 100",
        "TTL k:b",
        "GETEX k:b PERSIST",
        "TTL k:b",
        "GETEX k:b EX 0",
        "GETEX k:b EX 10 PX 10",
        "GETEX k:b PERSIST EX 10",
        "GETEX k:b FOO",
        "GETEX k:none",
        "GETEX k:b PXAT 4102444800000",
        "PEXPIRETIME k:b",
        "SETNX k:n 1",
        "SETNX k:n 2",
        "GET k:n",
        "SETEX k:e 100 v",
        "SETEX k:e 0 v",
        "SETEX k:e x v",
        "PSETEX k:e 100000 v",
        "TTL k:e",
    ],
    // Strings: APPEND, STRLEN, GETRANGE, SETRANGE, INCR family, TYPE.
    &[
        "APPEND k:s abc",
        "APPEND k:s def",
        "STRLEN k:s",
        "STRLEN k:none",
        "GETRANGE k:s 0 2",
        "GETRANGE k:s -3 -1",
        "GETRANGE k:s -1 -3",
        "GETRANGE k:s 5 100",
        "GETRANGE k:s 100 200",
        "GETRANGE k:none 0 10",
        "GETRANGE k:s x 1",
        "SETRANGE k:s 2 ZZ",
        "GET k:s",
        "SETRANGE k:r 3 ab",
        "GET k:r",
        "SETRANGE k:s -1 a",
        "SETRANGE k:s x a",
        "INCRBYFLOAT k:f 10.5",
        "INCRBYFLOAT k:f 0.1",
        "INCRBYFLOAT k:f -5",
        "INCRBYFLOAT k:f abc",
        "INCRBYFLOAT k:s 1",
        "INCR k:i",
        "INCRBY k:i 10",
        "DECR k:i",
        "DECRBY k:i 3",
        "INCR k:s",
        "INCRBY k:i x",
        "SET k:big 9223372036854775807",
        "INCR k:big",
        "TYPE k:s",
        "TYPE k:none",
        "APPEND k:i 5",
        "GET k:i",
    ],
    // Expiry: EXPIRE's conditions, absolute times, PERSIST.
    &[
        "SET k:s v",
        "PERSIST k:s",
        "EXPIRE k:s 100 XX",
        "EXPIRE k:s 100 NX",
        "EXPIRE k:s 50 GT",
        "EXPIRE k:s 200 GT",
        "EXPIRE k:s 300 LT",
        "EXPIRE k:s 100 LT",
        "TTL k:s",
        "EXPIRE k:s 10 NX XX",
        "EXPIRE k:s 10 GT LT",
        "EXPIRE k:s 10 BAD",
        "EXPIRE k:s x",
        "EXPIRE k:s",
        "PERSIST k:s",
        "TTL k:s",
        "EXPIRE k:s 10 LT",
        "TTL k:s",
        "PEXPIRE k:s 100000",
        "PTTL k:none",
        "PERSIST k:none",
        "EXPIREAT k:s 4102444800",
        "EXPIRETIME k:s",
        "PEXPIREAT k:s 4102444800123",
        "PEXPIRETIME k:s",
        "EXPIRETIME k:s",
        "EXPIREAT k:s 1",
        "EXISTS k:s",
        "EXPIRE k:none 10",
        "SET k:t v",
        "EXPIRE k:t 0",
        "EXISTS k:t",
        "SET k:t v",
        "PEXPIRE k:t -1",
        "GET k:t",
    ],
    // Multi-key commands of one slot.
    &[
        "MSET {t}a 1 {t}b 2",
        "MGET {t}a {t}b {t}c",
        "MSET {t}a 1 {t}b",
        "EXISTS {t}a {t}b {t}c",
        "EXISTS {t}a {t}a",
        "TOUCH {t}a {t}c",
        "DEL {t}a {t}b {t}c",
        "UNLINK {t}a",
        "MGET {t}a {t}b",
        "DEL",
    ],
    // Transactions.
    &[
        "MULTI",
        "SET {t}x 1",
        "INCR {t}x",
        "GET {t}x",
        "GETDEL {t}x",
        "EXISTS {t}x",
        "EXEC",
        "MULTI",
        "SET {t}x 1",
        "INCR",
        "EXEC",
        "DISCARD",
        "EXEC",
        "MULTI",
        "MULTI",
        "SET {t}x 2",
        "DISCARD",
        "GET {t}x",
        "SET {t}str abc",
        "MULTI",
        "INCR {t}str",
        "APPEND {t}str d",
        "GET {t}str",
        "EXEC",
        "MULTI",
        "EXEC",
    ],
    // Hashes, and WRONGTYPE across types.
    &[
        "HSET k:h a 1 b 2",
        "HSET k:h a 3 c 4",
        "HGET k:h a",
        "HGET k:h none",
        "HGET k:none a",
        "HMGET k:h a none c",
        "HMGET k:none a b",
        "HGETALL k:h",
        "HGETALL k:none",
        "HKEYS k:h",
        "HVALS k:h",
        "HKEYS k:none",
        "HLEN k:h",
        "HLEN k:none",
        "HEXISTS k:h a",
        "HEXISTS k:h none",
        "HSTRLEN k:h a",
        "HSTRLEN k:h none",
        "HSETNX k:h a 9",
        "HSETNX k:h d 9",
        "HINCRBY k:h b 40",
        "HINCRBY k:h new -5",
        "HINCRBY k:h a x",
        "HINCRBY k:h d 9223372036854775807",
        "HSET k:h s abc",
        "HINCRBY k:h s 1",
        "HINCRBYFLOAT k:h b 0.5",
        "HINCRBYFLOAT k:h f 1e3",
        "HINCRBYFLOAT k:h s 1",
        "HINCRBYFLOAT k:h b x",
        "HINCRBYFLOAT k:h b inf",
        "HSCAN k:h 0",
        "HSCAN k:h 0 MATCH ?",
        "HSCAN k:h 0 COUNT 100 MATCH a*",
        "HSCAN k:none 0",
        "HSCAN k:h x",
        "HSCAN k:h 0 COUNT 0",
        "HSCAN k:h 0 FOO",
        "HDEL k:h a none c",
        "HGETALL k:h",
        "TYPE k:h",
        "GET k:h",
        "INCR k:h",
        "APPEND k:h x",
        "STRLEN k:h",
        "GETRANGE k:h 0 1",
        "GETDEL k:h",
        "GETEX k:h",
        "SET k:h v GET",
        "SETRANGE k:h 0 x",
        "INCRBYFLOAT k:h 1",
        "EXISTS k:h",
        "EXPIRE k:h 100",
        "TTL k:h",
        "HSET k:h z 1",
        "TTL k:h",
        "PERSIST k:h",
        "SET k:s v",
        "HSET k:s a 1",
        "HGET k:s a",
        "HGETALL k:s",
        "HDEL k:s a",
        "HLEN k:s",
        "HINCRBY k:s a 1",
        "HSCAN k:s 0",
        "TYPE k:s",
        "SET k:h v",
        "TYPE k:h",
        "HSET k:h",
        "HSET k:h a",
        "HSET k:h a 1 b",
        "HMSET k:h2 a 1 b 2",
        "HMSET k:h2 a",
        "HGETALL k:h2",
        "HDEL k:h2 a b",
        "EXISTS k:h2",
        "HGETALL k:h2",
        "HDEL k:h2",
        "HGET k:h2",
        "MULTI",
        "HSET {t}h f 1",
        "HINCRBY {t}h f 2",
        "GET {t}h",
        "HGETALL {t}h",
        "EXEC",
    ],
    // Keys of a slot in one step: MSETNX, RENAME, RENAMENX, COPY.
    &[
        "MSETNX {t}a 1 {t}b 2",
        "MSETNX {t}a 1 {t}c 3",
        "GET {t}c",
        "MSETNX {t}d 1 {t}d 2",
        "GET {t}d",
        "MSETNX {t}a",
        "MSETNX {t}a 1 {t}b",
        "MSETNX k:x 1 k:y 2",
        "RENAME {t}none {t}z",
        "RENAMENX {t}none {t}z",
        "EXPIRE {t}a 100",
        "RENAME {t}a {t}z",
        "TTL {t}z",
        "EXISTS {t}a",
        "RENAME {t}z {t}z",
        "RENAMENX {t}z {t}z",
        "RENAMENX {t}z {t}b",
        "RENAME {t}z {t}b",
        "GET {t}b",
        "TTL {t}b",
        "RENAME k:x k:y",
        "RENAME {t}b",
        "HSET {t}h f v",
        "RENAME {t}h {t}h2",
        "HGETALL {t}h2",
        "TYPE {t}h",
        "COPY {t}h2 {t}h3",
        "COPY {t}h2 {t}h3",
        "COPY {t}h2 {t}h3 REPLACE",
        "HGETALL {t}h3",
        "COPY {t}b {t}h3 REPLACE",
        "TYPE {t}h3",
        "COPY {t}none {t}x",
        "COPY {t}b {t}b",
        "COPY {t}b {t}c2 DB 0",
        "COPY {t}b {t}c3 DB 1",
        "COPY {t}b {t}c3 DB 99",
        "COPY {t}b {t}c3 DB x",
        "COPY {t}b {t}c3 FOO",
        "COPY {t}b {t}c3 DB",
        "COPY {t}b",
        "COPY k:x k:y",
        "MULTI",
        "MSETNX {t}m1 a {t}m2 b",
        "RENAME {t}m1 {t}m3",
        "COPY {t}m3 {t}m4",
        "MGET {t}m1 {t}m2 {t}m3 {t}m4",
        "EXEC",
    ],
    // FLUSHDB and FLUSHALL (every script's keys go).
    &[
        "SET k:a 1",
        "HSET k:h f v",
        "SET {t}x 1 EX 100",
        "GET k:a",
        "FLUSHDB",
        "DBSIZE",
        "GET k:a",
        "HGETALL k:h",
        "EXISTS {t}x",
        "SET k:a 2",
        "FLUSHALL SYNC",
        "GET k:a",
        "FLUSHDB ASYNC",
        "FLUSHALL async",
        "FLUSHDB foo",
        "FLUSHDB ASYNC x",
        "FLUSHALL foo",
        "DBSIZE",
    ],
    // WATCH and UNWATCH.
    &[
        "WATCH {t}w",
        "MULTI",
        "SET {t}w 1",
        "EXEC",
        "WATCH {t}w {t}v",
        "SET {t}w 2",
        "MULTI",
        "INCR {t}w",
        "EXEC",
        "GET {t}w",
        "WATCH {t}w",
        "UNWATCH",
        "SET {t}w 3",
        "MULTI",
        "INCR {t}w",
        "EXEC",
        "WATCH {t}w",
        "MULTI",
        "WATCH {t}w",
        "UNWATCH",
        "INCR {t}w",
        "EXEC",
        "WATCH {t}none",
        "MULTI",
        "EXEC",
        "WATCH {t}w",
        "DEL {t}w",
        "MULTI",
        "EXEC",
        "WATCH {t}w",
        "MULTI",
        "DISCARD",
        "SET {t}w 5",
        "MULTI",
        "GET {t}w",
        "EXEC",
        "WATCH",
        "WATCH k:a k:b",
        "UNWATCH x",
        "MULTI",
        "UNWATCH",
        "EXEC",
    ],
    // Connection and cluster commands.
    &[
        "PING",
        "PING hi",
        "PING a b",
        "ECHO x",
        "SELECT 0",
        "SELECT 1",
        "SELECT x",
        "READONLY",
        "READWRITE",
        "ASKING",
        "CLUSTER KEYSLOT foo",
        "CLUSTER KEYSLOT {user1}x",
        "CLUSTER KEYSLOT",
        "CLUSTER COUNTKEYSINSLOT x",
        "CLUSTER COUNTKEYSINSLOT -1",
        "CLUSTER COUNTKEYSINSLOT 16384",
        "CLUSTER COUNTKEYSINSLOT",
        "CLUSTER GETKEYSINSLOT 5 x",
        "CLUSTER GETKEYSINSLOT 5 -1",
        "CLUSTER GETKEYSINSLOT 99999 1",
        "CLUSTER NOSUCH",
        "CLIENT SETNAME abc",
        "CLIENT GETNAME",
        "CLIENT SETNAME a\u{1}b",
        "CLIENT NOSUCH",
        "HELLO 4",
        "HELLO x",
        "HELLO 3 SETNAME",
        "HELLO 3 FOO",
        "COMMAND INFO get set getex nosuch",
        "COMMAND DOCS getdel",
        "NOSUCHCMD a b",
        "CONFIG NOSUCH",
        // CONFIG SET of the cache's bound and policy, and its errors (set
        // back to no bound after).
        "CONFIG SET maxmemory",
        "CONFIG SET maxmemory 1mb extra",
        "CONFIG SET nosuch 1",
        "CONFIG SET maxmemory lots",
        "CONFIG SET maxmemory-policy lru",
        "CONFIG SET maxmemory 1mb maxmemory 2mb",
        "CONFIG SET maxmemory-samples 0",
        "CONFIG SET maxmemory-samples x",
        "CONFIG SET maxmemory-samples -1",
        "CONFIG SET MAXMEMORY 64MB maxmemory-policy ALLKEYS-LFU maxmemory-samples 7",
        "CONFIG GET maxmemory",
        "CONFIG GET maxmemory-policy",
        "CONFIG GET maxmemory-samples",
        "CONFIG SET maxmemory 0 maxmemory-policy noeviction maxmemory-samples 5",
        "CONFIG GET maxmemory-policy",
        // The client limits and the log level, live, and their errors (set
        // back after).
        "CONFIG SET maxclients x",
        "CONFIG SET maxclients 0",
        "CONFIG SET maxclients 500",
        "CONFIG GET maxclients",
        "CONFIG SET timeout -1",
        "CONFIG SET timeout x",
        "CONFIG SET timeout 300",
        "CONFIG GET timeout",
        "CONFIG SET timeout 0",
        "CONFIG SET proto-max-bulk-len x",
        "CONFIG SET proto-max-bulk-len 100",
        "CONFIG SET proto-max-bulk-len 2mb",
        "CONFIG GET proto-max-bulk-len",
        "CONFIG SET proto-max-bulk-len 512mb",
        "CONFIG SET loglevel foo",
        "CONFIG SET loglevel WARNING",
        "CONFIG GET loglevel",
        "CONFIG SET loglevel notice timeout 0",
        "CONFIG GET loglevel",
        "CONFIG GET requirepass",
        "CLIENT KILL 1.2.3.4:5",
        "CLIENT LIST TYPE foo",
        "CLIENT KILL ID 0",
        "CLIENT KILL ID x",
        "CLIENT NO-EVICT maybe",
        "CLIENT NO-EVICT on",
        "CLIENT LIST ID x",
        "CLIENT LIST ID 0",
        "CLIENT LIST TYPE pubsub",
        "CLIENT KILL foo bar",
        "CLIENT KILL ID 999999",
        "CLIENT KILL SKIPME maybe",
        "CLIENT LIST foo",
        "CLIENT INFO x",
        "CLIENT KILL",
        "SCAN x",
        "SCAN 0 COUNT 0",
        "SCAN 0 COUNT x",
        "SCAN 0 FOO",
        "SCAN 0 MATCH",
        "KEYS",
        "DBSIZE x",
        "MULTI",
        "DBSIZE",
        "EXEC",
    ],
    // The slow log's and its settings' errors and help (its entries:
    // `slowlog_entries_and_commandstats_as_redis_keeps_them`).
    &[
        "SLOWLOG",
        "SLOWLOG FOO",
        "SLOWLOG GET -2",
        "SLOWLOG GET x",
        "SLOWLOG GET 1 2",
        "SLOWLOG LEN x",
        "SLOWLOG RESET x",
        "SLOWLOG HELP",
        "CONFIG SET slowlog-log-slower-than -2",
        "CONFIG SET slowlog-log-slower-than x",
        "CONFIG SET slowlog-max-len -1",
        // One name each: a pattern's matches come in redis-server's hash
        // order, which changes from run to run.
        "CONFIG GET slowlog-max-len",
        "CONFIG GET slowlog-log-slower-than",
    ],
];

/// A one-node Redis Cluster on `port`, stopped when dropped.
struct RedisCluster {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn redis_cluster(port: u16) -> Option<RedisCluster> {
    let dir = std::env::temp_dir().join(format!("failgroup-redis-{port}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--cluster-enabled", "yes", "--cluster-config-file"])
        .arg(dir.join("nodes.conf"))
        .current_dir(&dir)
        .stdout(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(std::env::var_os("FAILGROUP_REQUIRE_REDIS").is_none(), "redis-server is required: {e}");
            eprintln!("note: redis-server is not installed ({e}): the differential test is skipped");
            return None;
        }
    };
    let rc = RedisCluster { child, dir };
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        match Resp::try_connect(&addr) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("redis-server on {addr}: {e}"),
        }
    };
    assert_eq!(c.run("CLUSTER ADDSLOTSRANGE 0 16383"), Reply::Simple("OK".into()));
    while Instant::now() < deadline {
        match c.run("CLUSTER INFO") {
            Reply::Bulk(Some(t)) if t.starts_with(b"cluster_state:ok") => return Some(rc),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    panic!("the one-node Redis Cluster never came up");
}

/// The script's line for run `run`: its keys renamed to that run's.
fn line_for(line: &str, run: usize) -> Vec<Vec<u8>> {
    line.split(' ')
        .map(|w| w.replace("k:", &format!("k{run}:")).replace("{t}", &format!("{{t{run}}}")))
        .map(String::into_bytes)
        .collect()
}

#[test]
fn every_supported_command_answers_as_redis_in_both_protocols() {
    let Some(_redis) = redis_cluster(21790) else { return };
    let cluster = Cluster::start(21800, 3, 1);
    let mut differences = Vec::new();
    let mut compared = 0;
    for (i, script) in SCRIPTS.iter().enumerate() {
        for proto in ["2", "3"] {
            // One run per script, protocol and failgroup server (the owner
            // of some keys and a forwarder for others).
            for server in ["s1", "s2"] {
                let run = compared;
                let mut redis = Resp::connect("127.0.0.1:21790");
                let mut ours = Resp::connect(&cluster.addr(server));
                for c in [&mut redis, &mut ours] {
                    assert!(!matches!(c.run(&format!("HELLO {proto}")), Reply::Error(_)), "HELLO {proto}");
                }
                for line in script.iter() {
                    let args = line_for(line, run);
                    let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                    let (want, got) = (redis.cmd(&args), ours.cmd(&args));
                    if want != got {
                        differences.push(format!(
                            "script {i}, RESP{proto}, {server}: {line}\n  redis:     {want:?}\n  failgroup: {got:?}"
                        ));
                    }
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 600, "every script ran: {compared} replies compared");
    assert!(differences.is_empty(), "{} of {compared} replies differ:\n{}", differences.len(), differences.join("\n"));
}

/// HELLO's reply, beside the connection's id: the same fields, the same
/// types, the version failgroup follows.
#[test]
fn hello_answers_as_a_redis_cluster_node() {
    let Some(_redis) = redis_cluster(21791) else { return };
    let cluster = Cluster::start(21810, 2, 1);
    for proto in ["2", "3"] {
        let mut redis = Resp::connect("127.0.0.1:21791");
        let mut ours = Resp::connect(&cluster.addr("s1"));
        let strip_id = |r: Reply| match r {
            Reply::Map(pairs) => {
                Reply::Map(pairs.into_iter().filter(|(k, _)| *k != Reply::Bulk(Some(b"id".to_vec()))).collect())
            }
            Reply::Array(Some(items)) => {
                let pos = items.iter().position(|r| *r == Reply::Bulk(Some(b"id".to_vec()))).expect("an id");
                Reply::Array(Some(
                    items.into_iter().enumerate().filter(|(i, _)| *i != pos && *i != pos + 1).map(|(_, r)| r).collect(),
                ))
            }
            other => panic!("HELLO answered {other:?}"),
        };
        let line = format!("HELLO {proto}");
        assert_eq!(strip_id(ours.run(&line)), strip_id(redis.run(&line)), "HELLO {proto}");
    }
}

/// A whole iteration of SCAN from cursor 0, the keys found, sorted.
fn scan_all(c: &mut Resp, opts: &str) -> Vec<Vec<u8>> {
    let (mut cursor, mut keys) = (b"0".to_vec(), Vec::new());
    for _ in 0..10_000 {
        let mut args: Vec<&[u8]> = vec![b"SCAN", &cursor];
        args.extend(opts.split(' ').filter(|w| !w.is_empty()).map(str::as_bytes));
        let Reply::Array(Some(parts)) = c.cmd(&args) else { panic!("SCAN answers an array") };
        let [Reply::Bulk(Some(next)), Reply::Array(Some(found))] = &parts[..] else { panic!("{parts:?}") };
        keys.extend(found.iter().map(|k| match k {
            Reply::Bulk(Some(k)) => k.clone(),
            other => panic!("a key: {other:?}"),
        }));
        cursor = next.clone();
        if cursor == b"0" {
            keys.sort();
            keys.dedup();
            return keys;
        }
    }
    panic!("SCAN did not end")
}

fn sorted(r: Reply) -> Vec<Reply> {
    let Reply::Array(Some(mut v)) = r else { panic!("an array: {r:?}") };
    v.sort_by_key(|r| format!("{r:?}"));
    v
}

/// SCAN, KEYS and DBSIZE answer for the whole database (every key in the
/// store, not only one server's cache) on every server, as a one-node Redis
/// does for its keys: the same keys and the same count, expired keys left
/// out, through every server, whatever its cache holds.
#[test]
fn scan_keys_and_dbsize_see_the_whole_database() {
    let Some(_redis) = redis_cluster(21792) else { return };
    let cluster = Cluster::start(21820, 3, 1);
    let mut redis = Resp::connect("127.0.0.1:21792");
    let mut writer = Resp::connect(&cluster.addr("s1"));
    for c in [&mut redis, &mut writer] {
        for i in 0..120 {
            assert!(!matches!(c.run(&format!("SET user:{i}:name n{i}")), Reply::Error(_)));
            if i % 3 == 0 {
                c.run(&format!("SET {{s}}session:{i} x EX 300"));
            }
        }
        c.run("SET gone 1");
        c.run("EXPIREAT gone 1");
        c.run("SET plain v");
        for i in 0..5 {
            assert_eq!(c.run(&format!("HSET obj:{i} f v")), Reply::Int(1));
        }
    }
    for server in ["s1", "s2", "s3"] {
        let mut ours = Resp::connect(&cluster.addr(server));
        for line in ["DBSIZE", "KEYS nosuch*", "CLUSTER COUNTKEYSINSLOT 3828", "CLUSTER COUNTKEYSINSLOT 1"] {
            assert_eq!(ours.run(line), redis.run(line), "{server}: {line}");
        }
        // {s} hashes to slot 3828, 'plain' to slot 7143.
        for line in [
            "KEYS *",
            "KEYS user:1?:name",
            "KEYS {s}session:*",
            "KEYS [ps]*",
            "CLUSTER GETKEYSINSLOT 3828 1000",
            "CLUSTER GETKEYSINSLOT 7143 10",
        ] {
            assert_eq!(sorted(ours.run(line)), sorted(redis.run(line)), "{server}: {line}");
        }
        for opts in
            ["", "COUNT 7", "MATCH user:*:name COUNT 25", "MATCH *session* TYPE string", "TYPE hash", "TYPE list"]
        {
            let want = scan_all(&mut redis, opts);
            assert_eq!(scan_all(&mut ours, opts), want, "{server}: SCAN {opts}");
        }
    }
    assert_eq!(scan_all(&mut writer, "").len(), 120 + 40 + 1 + 5, "every live key, once");
    assert_eq!(scan_all(&mut writer, "TYPE HASH").len(), 5, "the hashes");
    assert_eq!(writer.run("CLUSTER COUNTKEYSINSLOT 3828"), Reply::Int(40), "the {{s}} keys");
}

/// The slow log's entries (the arguments cut as Redis cuts them, newest
/// first, the client's address and name) and INFO commandstats's lines, on
/// both with every command logged.
#[test]
fn slowlog_entries_and_commandstats_as_redis_keeps_them() {
    let Some(_redis) = redis_cluster(21794) else { return };
    let cluster = Cluster::start(21850, 3, 1);
    let long = "x".repeat(200);
    let many: Vec<String> = (0..40).map(|i| format!("{{t}}{i}")).collect();
    let mut seen = Vec::new();
    for addr in ["127.0.0.1:21794".to_string(), cluster.addr("s2")] {
        let mut c = Resp::connect(&addr);
        for line in ["CONFIG SET slowlog-log-slower-than 0", "CLIENT SETNAME app", "SLOWLOG RESET"] {
            assert!(!matches!(c.run(line), Reply::Error(_)), "{addr}: {line}");
        }
        c.run(&format!("SET {{t}}a {long}"));
        c.run(&format!("DEL {}", many.join(" ")));
        assert!(matches!(c.run("SET {t}a"), Reply::Error(_)), "a refused SET");
        let Reply::Array(Some(entries)) = c.run("SLOWLOG GET 2") else { panic!("{addr}: SLOWLOG GET") };
        assert_eq!(entries.len(), 2, "{addr}: the refused SET is not logged");
        let mut ids = Vec::new();
        let mut kept = Vec::new();
        for e in entries {
            let Reply::Array(Some(f)) = e else { panic!("{addr}: an entry") };
            assert_eq!(f.len(), 6, "{addr}: {f:?}");
            let (Reply::Int(id), Reply::Int(ts), Reply::Int(_us)) = (&f[0], &f[1], &f[2]) else { panic!("{f:?}") };
            assert!(*ts > 1_700_000_000, "{addr}: a unix time: {ts}");
            ids.push(*id);
            let Reply::Bulk(Some(peer)) = &f[4] else { panic!("{f:?}") };
            assert!(String::from_utf8_lossy(peer).starts_with("127.0.0.1:"), "{addr}: {peer:?}");
            kept.push((f[3].clone(), f[5].clone()));
        }
        assert!(ids[0] > ids[1], "{addr}: newest first: {ids:?}");
        let Reply::Bulk(Some(info)) = c.run("INFO commandstats") else { panic!("{addr}: INFO") };
        let info = String::from_utf8_lossy(&info).into_owned();
        let set = info.lines().find(|l| l.starts_with("cmdstat_set:")).unwrap_or_else(|| panic!("{addr}: {info}"));
        // calls=1,usec=N,usec_per_call=N.NN,rejected_calls=1,failed_calls=0
        let fields: Vec<(&str, &str)> =
            set["cmdstat_set:".len()..].split(',').filter_map(|f| f.split_once('=')).collect();
        let names: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["calls", "usec", "usec_per_call", "rejected_calls", "failed_calls"], "{addr}: {set}");
        assert_eq!((fields[0].1, fields[3].1, fields[4].1), ("1", "1", "0"), "{addr}: {set}");
        assert!(fields[2].1.split_once('.').is_some_and(|(_, d)| d.len() == 2), "{addr}: {set}");
        assert!(!info.contains("cmdstat_get:"), "{addr}: no GET ran");
        let Reply::Bulk(Some(default)) = c.run("INFO") else { panic!() };
        assert!(!String::from_utf8_lossy(&default).contains("# Commandstats"), "{addr}: not a default section");
        seen.push(kept);
    }
    assert_eq!(seen[0], seen[1], "the same arguments and client name as redis-server keeps");
    // The DEL's 40 arguments (41 with its name) as 31 and a count; the
    // SET's 200-byte value as 128 bytes and a count.
    let Reply::Array(Some(del)) = &seen[0][0].0 else { panic!() };
    assert_eq!(del.len(), 32);
    assert_eq!(del[31], Reply::Bulk(Some(b"... (10 more arguments)".to_vec())));
}

/// INFO errorstats (a default section) and stats' `total_error_replies`:
/// the same script of failing commands, run against redis-server and a
/// failgroup server, counts the same errors by code: refused commands,
/// unknown ones, a command's own error, and one inside EXEC's reply. INFO
/// latencystats has a line for the same commands, in the same format.
#[test]
fn errorstats_count_error_replies_by_code_as_redis_does() {
    let Some(_redis) = redis_cluster(21796) else { return };
    let cluster = Cluster::start(21870, 3, 1);
    let script = [
        "SET {e}k v",
        "INCR {e}k",
        "GET",
        "NOSUCHCOMMAND x",
        "SET {e}k v EX 0",
        "EXEC",
        "MULTI",
        "INCR {e}k",
        "SET {e}n 1",
        "EXEC",
        "GET {e}n",
        "MGET {e}n {e}k",
    ];
    let (mut seen, mut latency_names) = (Vec::new(), Vec::new());
    for addr in ["127.0.0.1:21796".to_string(), cluster.addr("s2")] {
        let mut c = Resp::connect(&addr);
        for line in script {
            c.run(line);
        }
        let Reply::Bulk(Some(info)) = c.run("INFO") else { panic!("{addr}: INFO") };
        let info = String::from_utf8_lossy(&info).into_owned();
        assert!(info.contains("# Errorstats\r\n"), "{addr}: a default section: {info}");
        let lines: Vec<String> = info
            .lines()
            .filter(|l| l.starts_with("errorstat_") || l.starts_with("total_error_replies:"))
            .map(str::to_string)
            .collect();
        seen.push(lines);
        // INFO latencystats: a line per command that ran (failed ones
        // too, refused ones not), each with p50, p99 and p99.9.
        let Reply::Bulk(Some(lat)) = c.run("INFO latencystats") else { panic!("{addr}: INFO latencystats") };
        let lat = String::from_utf8_lossy(&lat).into_owned();
        let mut names: Vec<String> = Vec::new();
        for l in lat.lines().filter(|l| l.starts_with("latency_percentiles_usec_")) {
            let (name, values) = l["latency_percentiles_usec_".len()..].split_once(':').expect("name:values");
            let keys: Vec<&str> = values.split(',').filter_map(|kv| kv.split_once('=').map(|(k, _)| k)).collect();
            assert_eq!(keys, ["p50", "p99", "p99.9"], "{addr}: {l}");
            for v in values.split(',').filter_map(|kv| kv.split_once('=').map(|(_, v)| v)) {
                assert!(v.split_once('.').is_some_and(|(_, d)| d.len() == 3), "{addr}: {l}");
            }
            names.push(name.to_string());
        }
        // The test's redis-server was set up with CLUSTER commands.
        names.retain(|n| !n.starts_with("cluster|"));
        names.sort();
        latency_names.push(names);
    }
    assert_eq!(latency_names[0], latency_names[1], "the same commands in latencystats as redis-server (left)");
    assert_eq!(seen[0], seen[1], "the same error counts as redis-server (left)");
    assert!(seen[0].iter().any(|l| l.starts_with("errorstat_ERR:count=")), "{:?}", seen[0]);
}
