//! Small helpers every part of the runtime uses: randomness, the wall
//! clock, logging set-up, the stop flag.

/// A random 64-bit number from the OS, for client ids that stay unique
/// across restarts (the store deduplicates writes by client id and seq).
pub fn random_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok() {
        return u64::from_le_bytes(b);
    }
    unix_ms().rotate_left(20) ^ std::process::id() as u64
}

/// Milliseconds since the Unix epoch on the wall clock (0 before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Sets up logging: `RUST_LOG` (or the given default level) to stderr.
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Stops a loop on SIGTERM or SIGINT.
pub fn stop_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    flag
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_numbers_differ() {
        assert_ne!(super::random_u64(), super::random_u64());
    }
}
