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
/// [`set_log_level`] changes the level later.
/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields` (the
    /// message and the event's fields).
    Json,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

pub fn init_logging(default: &str, format: LogFormat) {
    let directive = std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_string());
    // CONFIG GET loglevel names the level a plain one stands for.
    let level = match directive.trim().to_ascii_lowercase().as_str() {
        "trace" | "debug" => 0,
        "warn" | "error" | "off" => 3,
        _ => 2,
    };
    LEVEL.store(level, std::sync::atomic::Ordering::Relaxed);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    // The two formats are two subscriber types: each installs its own
    // reload handle (CONFIG SET loglevel).
    macro_rules! install {
        ($builder:expr) => {{
            let builder = $builder.with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_ok() {
                let _ = RELOAD.set(Box::new(move |f| handle.reload(f).is_ok()));
            }
        }};
    }
    match format {
        LogFormat::Text => install!(builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))),
        LogFormat::Json => install!(builder.json().with_ansi(false)),
    }
}

/// Redis's log levels (`loglevel`), each with the tracing level it stands for.
pub const LOG_LEVELS: [(&str, &str); 4] =
    [("debug", "debug"), ("verbose", "debug"), ("notice", "info"), ("warning", "warn")];

type Reload = Box<dyn Fn(tracing_subscriber::EnvFilter) -> bool + Send + Sync>;
static RELOAD: std::sync::OnceLock<Reload> = std::sync::OnceLock::new();
/// The index in [`LOG_LEVELS`] of the level last set (`notice` at start).
static LEVEL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(2);

/// Sets the log level by its Redis name; false if the name is none of
/// [`LOG_LEVELS`].
pub fn set_log_level(name: &str) -> bool {
    let Some(i) = LOG_LEVELS.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)) else { return false };
    if let Some(reload) = RELOAD.get() {
        reload(tracing_subscriber::EnvFilter::new(LOG_LEVELS[i].1));
    }
    LEVEL.store(i, std::sync::atomic::Ordering::Relaxed);
    true
}

/// The log level's Redis name, as CONFIG GET loglevel answers.
pub fn log_level() -> &'static str {
    LOG_LEVELS[LEVEL.load(std::sync::atomic::Ordering::Relaxed)].0
}

/// Stops a loop on SIGTERM or SIGINT.
pub fn stop_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    flag
}

/// Set on SIGHUP: re-read the config file.
pub fn hup_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGHUP, flag.clone());
    flag
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_numbers_differ() {
        assert_ne!(super::random_u64(), super::random_u64());
    }
}
