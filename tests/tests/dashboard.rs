//! Issue 18, item 5: the master's dashboard. Its page on the master's
//! metrics address shows who serves what (the master's view) and each
//! server's throughput and latency (its own metrics) under load; after a
//! `kill -9` it shows the server offline and its slots with a peer. A
//! headless Chromium renders it: the DOM it builds, and a screenshot whose
//! slot map has every server's colour (`FAILGROUP_DASHBOARD_SHOT=PATH`
//! copies the picture there: docs/dashboard.png is one).
//!
//! Without Chromium the browser half is skipped, unless
//! `FAILGROUP_REQUIRE_BROWSER=1` (as CI sets) makes that a failure.

use failgroup_tests::{Cluster, Resp};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `GET path` at `addr`: the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP reply");
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// The texts of the cells of server `name`'s row.
fn row(page: &str, name: &str) -> Vec<String> {
    let start = page.find(&format!("<tr id=\"{name}\">")).unwrap_or_else(|| panic!("a row for {name}:\n{page}"));
    let tr = &page[start..start + page[start..].find("</tr>").expect("the row ends")];
    tr.split("<td").skip(1).map(|cell| strip_tags(&format!("<td{cell}"))).collect()
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for ch in s.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// A number cell.
fn num(cells: &[String], i: usize) -> f64 {
    cells[i].parse().unwrap_or_else(|_| panic!("cell {i} is a number: {cells:?}"))
}

/// Columns of a server's row.
const STATE: usize = 3;
const SLOTS: usize = 4;
const COMMANDS: usize = 6;
const FOR_PEERS: usize = 7;
const MEAN: usize = 8;

#[test]
fn the_dashboard_shows_who_serves_what_and_each_servers_load() {
    let mut cluster = Cluster::start(24900, 3, 1);
    let cfg = failgroup::config::Config::load(&cluster.dir.join("cluster.toml")).expect("the dev config");
    let board = cfg.file.metrics.master.clone().expect("the master has a metrics address");
    let master_line = cluster.started.iter().find(|l| l.starts_with("master ")).expect("dev's master line");
    let shown = format!(" dashboard=http://{board}/ metrics=http://{board}/metrics");
    assert!(master_line.ends_with(&shown), "dev prints the dashboard's address: {master_line}");

    // Load through s1 (SETs and GETs, a sixth of them misses): two thirds of its keys are forwarded to s2 and s3.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, addr) = (stop.clone(), cluster.addr("s1"));
        std::thread::spawn(move || {
            let mut c = Resp::connect(&addr);
            let t0 = Instant::now();
            let mut ok = 0u64;
            for i in 0..5_000_000u64 {
                if stop.load(Ordering::Relaxed) || t0.elapsed() > Duration::from_secs(120) {
                    break;
                }
                let cmd =
                    if i % 2 == 0 { format!("SET dk{} {i}", i / 2 % 500) } else { format!("GET dk{}", i / 2 % 600) };
                if c.try_cmd(&cmd.split(' ').map(str::as_bytes).collect::<Vec<_>>()).is_ok() {
                    ok += 1;
                }
            }
            ok
        })
    };

    // Every server online with its third of the slots; s1 runs commands
    // and the others answer what it forwards, with a latency shown.
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let (status, page) = get(&board, "/");
        assert_eq!(status, "HTTP/1.1 200 OK", "{page}");
        let busy =
            |n: &str, col: usize| row(&page, n).get(col).and_then(|c| c.parse::<f64>().ok()).unwrap_or(0.0) > 0.0;
        if (busy("s1", COMMANDS) && busy("s2", FOR_PEERS) && busy("s3", FOR_PEERS)) || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(page.contains("acting master") && page.contains("mode linearizable"), "{page}");
    let mut slots = 0.0;
    for s in ["s1", "s2", "s3"] {
        let cells = row(&page, s);
        assert_eq!(cells[STATE], "online", "{s}: {cells:?}");
        assert!(num(&cells, SLOTS) > 5000.0, "{s} serves a third: {cells:?}");
        slots += num(&cells, SLOTS);
    }
    assert_eq!(slots, 16384.0);
    let s1 = row(&page, "s1");
    assert!(num(&s1, COMMANDS) > 0.0, "s1 runs the client's commands: {s1:?}");
    assert!(s1[MEAN].ends_with('s') && s1[MEAN] != "-", "a mean latency: {s1:?}");
    for s in ["s2", "s3"] {
        let cells = row(&page, s);
        assert!(num(&cells, FOR_PEERS) > 0.0, "{s} answers what s1 forwards: {cells:?}");
    }
    // The standby master's page says it stands by.
    let standby = cfg.file.metrics.standby_masters.values().next().expect("dev's standby has metrics");
    let (_, page) = get(standby, "/");
    assert!(page.contains("standby master (its view is not kept)"), "{page}");
    let (_, json) = get(&board, "/status.json");
    assert!(json.contains("\"name\": \"s2\"") && json.contains("\"acting\": true"), "{json}");

    // In a browser: the picture, under load.
    if let Some(chromium) = chromium() {
        let dir = tempdir("shot");
        let shot = dir.join("dashboard.png");
        let url = format!("http://{board}/");
        let out =
            browse(&chromium, &dir, &[&format!("--screenshot={}", shot.display()), "--window-size=1360,400", &url]);
        assert!(shot.exists(), "chromium wrote no screenshot: {out}");
        let (w, pixels) = decode(&shot);
        assert_eq!(w, 1360, "the window's width");
        // The slot map: a third in each server's colour (320 x 28 px each,
        // beside the swatches of the table).
        for (name, rgb) in [("s1", [0x4e, 0x79, 0xa7]), ("s2", [0xf2, 0x8e, 0x2b]), ("s3", [0x59, 0xa1, 0x4f])] {
            let n = pixels.iter().filter(|p| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 3)).count();
            assert!(n > 5000, "{name}'s colour on {n} pixels of the screenshot");
        }
        if let Ok(to) = std::env::var("FAILGROUP_DASHBOARD_SHOT") {
            std::fs::copy(&shot, &to).unwrap_or_else(|e| panic!("copy to {to}: {e}"));
        }
    }

    // s2 dies: the page shows it offline, its slots with a peer, and why
    // its metrics are missing.
    cluster.kill9("s2");
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let (_, page) = get(&board, "/");
        let s2 = row(&page, "s2");
        if (s2[STATE] == "offline" && s2[SLOTS] == "0") || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let s2 = row(&page, "s2");
    assert_eq!((s2[STATE].as_str(), s2[SLOTS].as_str()), ("offline", "0"), "{page}");
    assert!(s2[COMMANDS].starts_with("metrics: ") && s2[COMMANDS].contains("refused"), "{s2:?}");
    assert_eq!(s2.last().map(String::as_str), Some("1"), "one failover: {s2:?}");
    assert_eq!(num(&row(&page, "s1"), SLOTS) + num(&row(&page, "s3"), SLOTS), 16384.0, "{page}");
    if let Some(chromium) = chromium() {
        let dir = tempdir("dom");
        let dom = browse(&chromium, &dir, &["--dump-dom", &format!("http://{board}/")]);
        assert!(dom.contains("<table id=\"servers\">"), "{dom}");
        assert!(dom.contains("<td class=\"offline\">offline</td>"), "{dom}");
        assert_eq!(row(&dom, "s2")[STATE], "offline");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(load.join().expect("the load ran") > 0);
}

/// The browser: `FAILGROUP_CHROMIUM`, else Debian's; None when there is
/// none and none is required.
fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var("FAILGROUP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("FAILGROUP_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "FAILGROUP_REQUIRE_BROWSER=1 and no browser at {}",
        path.display()
    );
    eprintln!("no browser at {}: the browser half skipped", path.display());
    None
}

fn tempdir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("failgroup-dashboard-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs headless Chromium with a profile of its own in `dir`, no network
/// but the page's, for at most 90 s; its standard output.
fn browse(chromium: &Path, dir: &Path, args: &[&str]) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", chromium.display()));
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {args:?}: {status}");
            break;
        }
        if t0.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} still running after 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

/// A PNG's width and its pixels as RGB.
fn decode(path: &Path) -> (u32, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let step = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("a colour screenshot, not {other:?}"),
    };
    let pixels = buf[..info.buffer_size()].chunks(step).map(|p| [p[0], p[1], p[2]]).collect();
    (info.width, pixels)
}
