//! Issue 18: each server's Prometheus/OpenMetrics text on its own HTTP port
//! (`[metrics]`; `failgroup dev --metrics-port P` gives the master P and
//! server i P+i, and prints `metrics=http://ADDR/metrics` at the end of its line), parsed
//! with a real parser (Python's `prometheus_client`) and read moving under
//! load.

use failgroup_tests::{Cluster, Resp};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The body of `GET /metrics` at `addr` (asserting a 200).
fn scrape(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("metrics at {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP reply");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    body.to_string()
}

/// The value of the sample `name` (with its labels, as written).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn every_server_serves_metrics_a_parser_reads_and_they_move_under_load() {
    let cluster = Cluster::start(24700, 3, 1);
    let cfg = failgroup::config::Config::load(&cluster.dir.join("cluster.toml")).expect("the dev config");
    let at = |s: &str| cfg.file.metrics.servers.get(s).cloned().unwrap_or_else(|| panic!("{s} has a metrics address"));
    assert_eq!(at("s1"), "127.0.0.1:64701", "dev: the metrics port the harness gave, plus 1");

    let before = scrape(&at("s1"));
    let get_count = "failgroup_command_duration_seconds_count{command=\"get\"}";
    let gets_before = sample(&before, get_count).unwrap_or(0.0);
    let mut c = Resp::connect(&cluster.addr("s1"));
    for i in 0..50 {
        assert_eq!(c.run(&format!("SET mk{i} v")), failgroup::resp::Reply::Simple("OK".into()));
    }
    for i in 0..200 {
        c.run(&format!("GET mk{}", i % 60));
    }
    assert!(matches!(c.run("GET"), failgroup::resp::Reply::Error(_)), "a refused GET");
    // Copied for the metrics thread every 250 ms.
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let t = scrape(&at("s1"));
        if sample(&t, get_count).unwrap_or(0.0) >= gets_before + 200.0 || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sample(&after, get_count), Some(gets_before + 200.0), "the GET histogram moved by 200:\n{after}");
    assert_eq!(sample(&after, "failgroup_commands_total{command=\"set\"}"), Some(50.0));
    assert_eq!(sample(&after, "failgroup_commands_rejected_total{command=\"get\"}"), Some(1.0));
    let inf = sample(&after, "failgroup_command_duration_seconds_bucket{le=\"+Inf\",command=\"get\"}");
    assert_eq!(inf, Some(gets_before + 200.0), "every GET in the last bucket");
    let sum = sample(&after, "failgroup_command_duration_seconds_sum{command=\"get\"}").expect("a sum");
    assert!(sum > 0.0 && sum < 200.0, "200 GETs took {sum} s");
    assert!(sample(&after, "failgroup_keyspace_hits_total").unwrap_or(0.0) >= 150.0, "{after}");
    assert!(sample(&after, "failgroup_rights_held").unwrap_or(0.0) > 0.0, "{after}");
    assert!(sample(&after, "failgroup_store_commits_total").unwrap_or(0.0) > 0.0, "{after}");
    // Forwards (two thirds of the keys are other servers') and store
    // transactions, timed; batches counted by size.
    assert!(sample(&after, "failgroup_forward_duration_seconds_count").unwrap_or(0.0) > 0.0, "{after}");
    assert!(sample(&after, "failgroup_store_commit_duration_seconds_count").unwrap_or(0.0) > 0.0, "{after}");
    assert!(sample(&after, "failgroup_store_batch_commands_count").unwrap_or(0.0) > 0.0, "{after}");
    // s2 answered what s1 forwarded to it.
    let s2 = scrape(&at("s2"));
    assert!(sample(&s2, "failgroup_requests_served_total{from=\"peer\"}").unwrap_or(0.0) > 0.0, "{s2}");
    // The refused GET, among the errors by code.
    assert!(sample(&after, "failgroup_error_replies_total{code=\"ERR\"}").unwrap_or(0.0) >= 1.0, "{after}");

    // The master's: it acts, and has probed every server at its start.
    let master = cfg.file.metrics.master.clone().expect("the master has a metrics address");
    let deadline = Instant::now() + Duration::from_secs(5);
    let m = loop {
        let t = scrape(&master);
        if sample(&t, "failgroup_master_acting") == Some(1.0) || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sample(&m, "failgroup_master_acting"), Some(1.0), "{m}");
    assert!(sample(&m, "failgroup_master_probes_total").unwrap_or(0.0) >= 3.0, "{m}");
    assert_eq!(sample(&m, "failgroup_master_servers_offline"), Some(0.0), "{m}");
    // The master answers RESP's INFO and PING too (redis-cli, monitoring).
    let mut r = Resp::connect(&cluster.master());
    assert_eq!(r.run("PING"), failgroup::resp::Reply::Simple("PONG".into()));
    let failgroup::resp::Reply::Bulk(Some(info)) = r.run("INFO") else { panic!("the master's INFO") };
    let info = String::from_utf8_lossy(&info);
    for line in ["role:failgroup-master", "acting:1", "servers:3", "servers_offline:0", "topology_version:"] {
        assert!(info.contains(line), "{line}: {info}");
    }
    assert!(matches!(r.run("INFO a b"), failgroup::resp::Reply::Error(e) if e.contains("wrong number")));
    assert!(matches!(r.run("GET k"), failgroup::resp::Reply::Error(e) if e.contains("answers INFO")));

    // Every node's text, through a real OpenMetrics parser.
    let py = std::env::var("FAILGROUP_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import sys\n\
                  from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
                  fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}\n\
                  master = 'failgroup_master_acting' in fams\n\
                  need = ['failgroup_master_probes', 'failgroup_master_notices', 'failgroup_master_marked_offline',\n\
                          'failgroup_master_view_version'] if master else \\\n\
                         ['failgroup_commands', 'failgroup_command_duration_seconds', 'failgroup_cache_hits',\n\
                          'failgroup_error_replies', 'failgroup_forward_duration_seconds',\n\
                          'failgroup_store_commit_duration_seconds', 'failgroup_store_batch_commands',\n\
                          'failgroup_requests_forwarded', 'failgroup_requests_served', 'failgroup_rights_held', 'failgroup_store_commits',\n\
                          'failgroup_connected_clients', 'failgroup_failovers']\n\
                  missing = [n for n in need if n not in fams]\n\
                  assert not missing, missing\n\
                  assert master or fams['failgroup_command_duration_seconds'].type == 'histogram'\n\
                  print('ok', len(fams))\n";
    // The standby master's own: it stands by.
    let (standby, standby_at) = cfg.file.metrics.standby_masters.iter().next().expect("dev's standby has metrics");
    assert_eq!(standby, &cluster.standby_masters[0].0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let standby_text = loop {
        let t = scrape(standby_at);
        if sample(&t, "failgroup_master_acting").is_some() || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sample(&standby_text, "failgroup_master_acting"), Some(0.0), "{standby_text}");
    for s in ["s1", "s2", "s3", "master", "standby"] {
        let text = scrape(&match s {
            "master" => master.clone(),
            "standby" => standby_at.clone(),
            _ => at(s),
        });
        assert!(text.ends_with("# EOF\n"), "{s}");
        let child = std::process::Command::new(&py)
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else { panic!("{py} does not run") };
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if stderr.contains("No module named 'prometheus_client'") {
            assert!(std::env::var_os("FAILGROUP_REQUIRE_CLIENTS").is_none(), "prometheus_client is required");
            eprintln!("note: {py} has no prometheus_client: the parser check is skipped");
            return;
        }
        assert!(stdout.starts_with("ok"), "{s}: the parser refused the text: {stderr}\n{text}");
    }
}
