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
    // Nothing listens on port 1: a clear error, not a hang, and the exit
    // code of an unreachable master.
    let (code, out) = failgroup(&["status", "--master", "127.0.0.1:1"]);
    assert_eq!(code, 3);
    assert!(out.contains("127.0.0.1:1"), "{out}");
}
