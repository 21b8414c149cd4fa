//! The core stays pure: no clock, socket, file, thread or randomness in
//! `model/src`, and no IO crate among its dependencies.

use std::path::Path;
use std::process::Command;

const FORBIDDEN_APIS: [&str; 8] =
    ["Instant::now", "SystemTime", "std::net", "std::fs", "std::thread", "tokio", "rand::", "thread_rng"];

#[test]
fn core_sources_read_no_clock_and_do_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/src");
    let mut files = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        files += 1;
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            for api in FORBIDDEN_APIS {
                assert!(!code.contains(api), "{}:{}: {api} in the pure core", path.display(), n + 1);
            }
        }
    }
    assert!(files >= 8, "read only {files} files");
}

#[test]
fn core_depends_on_no_io_crate() {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-p", "failgroup-model", "-e", "normal", "--prefix", "none", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && tree.contains("imbl"),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in tree.lines().filter_map(|l| l.split_whitespace().next()) {
        for banned in ["stateright", "proptest", "mio", "tokio", "rusqlite", "postgres", "socket2", "libc", "clap"] {
            assert_ne!(name, banned, "the core pulls in {banned}");
        }
    }
}
