//! The `failgroup` binary's command line: bad input gets a clear error
//! that names what is wrong, and exit status 2, never a panic.
//!
//! (Being an integration test of this package, it also makes
//! `cargo test --workspace` build the binary the end-to-end tests start.)

use std::process::Command;

fn failgroup(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_failgroup")).args(args).output().expect("run failgroup");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn config(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("failgroup-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const GOOD: &str = r#"
master = "127.0.0.1:7100"
[cluster]
[[cluster.servers]]
name = "s1"
addr = "127.0.0.1:7101"
[[cluster.groups]]
name = "g1"
members = ["s1"]
"#;

#[test]
fn config_errors_name_the_field() {
    let cases = [
        ("typo.toml", GOOD.replace("master =", "mastr ="), "mastr"),
        ("lease.toml", GOOD.to_string() + "[timing]\nlease = 100\n", "timing.lease"),
        ("group.toml", GOOD.replace("members = [\"s1\"]", "members = [\"s7\"]"), "cluster.groups"),
        ("addr.toml", GOOD.replace("127.0.0.1:7101", "not an address"), "cluster.servers[0].addr"),
        ("store.toml", "store = \"redis://x\"\n".to_string() + GOOD, "store"),
    ];
    for (name, text, field) in cases {
        let (code, out) = failgroup(&["server", "--config", &config(name, &text), "--id", "s1"]);
        assert_eq!(code, 2, "{name}: {out}");
        assert!(out.contains("error:") && out.contains(field), "{name} names {field}: {out}");
        assert!(!out.contains("panicked"), "{out}");
    }
    let (code, out) = failgroup(&["server", "--config", &config("good.toml", GOOD), "--id", "s9"]);
    assert_eq!(code, 2);
    assert!(out.contains("--id") && out.contains("s1"), "lists the servers there are: {out}");
    let (code, out) = failgroup(&["master", "--config", "/nonexistent/cluster.toml"]);
    assert_eq!(code, 2);
    assert!(out.contains("/nonexistent/cluster.toml"), "{out}");
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let (code, out) = failgroup(&["dev", "--servers", "3", "--groups", "5", "--port", "7900"]);
    assert_eq!(code, 2);
    assert!(out.contains("--groups"), "{out}");
    let (code, out) = failgroup(&["dev", "--servers", "0", "--port", "7900"]);
    assert_eq!(code, 2);
    assert!(out.contains("--servers"), "{out}");
    let (code, out) = failgroup(&["dev", "--port", "65534", "--servers", "3"]);
    assert_eq!(code, 2);
    assert!(out.contains("--port"), "{out}");
    let (code, out) = failgroup(&["dev", "--port", "7900", "--metrics-port", "65534", "--servers", "3"]);
    assert_eq!(code, 2);
    assert!(out.contains("--metrics-port"), "{out}");
    // Nothing listens on port 1: a clear error, not a hang, and the exit
    // code of an unreachable master.
    let (code, out) = failgroup(&["status", "--master", "127.0.0.1:1"]);
    assert_eq!(code, 3);
    assert!(out.contains("127.0.0.1:1"), "{out}");
}

/// `--log-format json`: one JSON object per log line, with the level and
/// the message among its fields.
#[test]
fn logs_are_json_lines_on_request() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("failgroup-cli-json-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = GOOD.replace("127.0.0.1:7100", "127.0.0.1:7390").replace("127.0.0.1:7101", "127.0.0.1:7391");
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_failgroup"))
        .args(["--log-format", "json", "master", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run failgroup master");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = rx.recv_timeout(std::time::Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let line = first.expect("a log line within 10 s");
    let doc: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(doc["level"], "INFO", "{doc}");
    assert!(doc["fields"]["message"].as_str().is_some_and(|m| m.contains("master listening")), "{doc}");
    assert!(doc["timestamp"].is_string(), "{doc}");
    let (code, out) = failgroup(&["--log-format", "xml", "status"]);
    assert_eq!(code, 2);
    assert!(out.contains("text") && out.contains("json"), "lists the formats: {out}");
}
