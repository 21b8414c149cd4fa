//! What the server and master event loops share: non-blocking connections
//! with buffers, the node-protocol handshake, timers and the clock.

use crate::wire::{self, Msg, Peer};
use failgroup_model::Time;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

/// The node's clock, in the core's milliseconds: CLOCK_BOOTTIME, which is
/// monotonic (it never steps) and, unlike CLOCK_MONOTONIC (what `Instant`
/// reads), keeps counting while the host is suspended. A holder suspended
/// past its lease thus sees the lease over when it wakes
/// (specs/properties.md, "Clocks").
#[derive(Clone, Copy, Debug)]
pub struct Clock(u64);

impl Clock {
    pub fn new() -> Clock {
        Clock(boottime_ms())
    }

    pub fn now(&self) -> Time {
        Time(boottime_ms().saturating_sub(self.0))
    }
}

fn boottime_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own; CLOCK_BOOTTIME
    // exists on every Linux since 2.6.39.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_BOOTTIME): {}", io::Error::last_os_error());
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// A role's named timers: the core's one driver, on the runtime's clock.
pub use failgroup_model::Timers;

/// The first socket address `addr` names.
pub fn resolve(addr: &str) -> io::Result<SocketAddr> {
    std::net::ToSocketAddrs::to_socket_addrs(addr)?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no address for {addr}")))
}

/// A poll with a listener on `addr` registered under `token`.
pub fn listen(addr: &str, token: Token) -> Result<(mio::Poll, mio::net::TcpListener), String> {
    let sock = resolve(addr).map_err(|e| format!("{addr}: {e}"))?;
    let poll = mio::Poll::new().map_err(|e| e.to_string())?;
    let mut listener = mio::net::TcpListener::bind(sock).map_err(|e| format!("listen on {addr}: {e}"))?;
    poll.registry().register(&mut listener, token, Interest::READABLE).map_err(|e| e.to_string())?;
    Ok((poll, listener))
}

/// What a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// Accepted; the first bytes decide.
    Unknown,
    Resp,
    /// Node protocol; `peer` once the hello is accepted.
    Node {
        peer: Option<Peer>,
    },
}

/// A non-blocking connection with its buffers.
pub struct Conn {
    pub sock: TcpStream,
    pub addr: SocketAddr,
    pub rbuf: Vec<u8>,
    pub wbuf: Vec<u8>,
    pub proto: Proto,
    /// Close once the output is flushed.
    pub closing: bool,
    /// The peer closed or failed: drop now.
    pub dead: bool,
    pub last_active: Instant,
    pub created: Instant,
    /// Outbound connection still connecting.
    pub connecting: bool,
}

impl Conn {
    pub fn new(sock: TcpStream, addr: SocketAddr, proto: Proto) -> Conn {
        let now = Instant::now();
        Conn {
            sock,
            addr,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            proto,
            closing: false,
            dead: false,
            last_active: now,
            created: now,
            connecting: false,
        }
    }

    /// Opens a node connection to `addr`: the preamble and hello are queued
    /// and leave when the connection is established.
    pub fn connect(addr: &str, from: Peer, secret: Option<&str>) -> io::Result<Conn> {
        let sock_addr = resolve(addr)?;
        let sock = TcpStream::connect(sock_addr)?;
        let mut conn = Conn::new(sock, sock_addr, Proto::Node { peer: None });
        conn.connecting = true;
        conn.wbuf.extend_from_slice(&wire::PREAMBLE);
        conn.send(&Msg::Hello { from, secret: secret.map(str::to_string) });
        Ok(conn)
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.sock, token, Interest::READABLE | Interest::WRITABLE)
    }

    pub fn send(&mut self, msg: &Msg) {
        self.wbuf.extend_from_slice(&wire::encode(msg));
    }

    /// Reads all that is available (edge-triggered). Marks the connection
    /// dead on EOF or error.
    pub fn read_all(&mut self) {
        // One zeroed buffer per thread, not one per call: a 64 KiB array
        // on the stack cost a 64 KiB memset for every readable event.
        thread_local! {
            static CHUNK: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0u8; 64 * 1024].into_boxed_slice());
        }
        CHUNK.with(|c| self.read_with(&mut c.borrow_mut()));
    }

    fn read_with(&mut self, chunk: &mut [u8]) {
        loop {
            match self.sock.read(chunk) {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    self.last_active = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
    }

    /// Writes what it can of the output.
    pub fn flush(&mut self) {
        if self.connecting {
            match self.sock.peer_addr() {
                Ok(_) => self.connecting = false,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    if let Ok(Some(_)) | Err(_) = self.sock.take_error() {
                        self.dead = true;
                    }
                    return;
                }
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        let mut written = 0;
        while written < self.wbuf.len() {
            match self.sock.write(&self.wbuf[written..]) {
                Ok(0) => {
                    self.dead = true;
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    break;
                }
            }
        }
        self.wbuf.drain(..written);
        if self.closing && self.wbuf.is_empty() {
            self.dead = true;
        }
    }

    /// Decodes the next node message. On a bad frame the connection is
    /// marked dead and `None` returned.
    pub fn next_msg(&mut self, max_frame: usize) -> Option<Msg> {
        match wire::decode(&self.rbuf, max_frame) {
            Ok(Some((msg, used))) => {
                self.rbuf.drain(..used);
                Some(msg)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(peer = %self.addr, error = %e, "closing a node connection");
                self.dead = true;
                None
            }
        }
    }

    /// Consumes the preamble of an accepted node connection; false if the
    /// bytes are not ours (or not yet all there).
    pub fn take_preamble(&mut self) -> bool {
        if self.rbuf.len() < wire::PREAMBLE.len() {
            return false;
        }
        if self.rbuf[..4] != wire::PREAMBLE {
            self.dead = true;
            return false;
        }
        self.rbuf.drain(..4);
        true
    }
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
