//! A non-blocking connection with its buffers, speaking RESP or the node
//! protocol, as both event loops (server and master) keep them.

use super::socket::resolve;
use super::wire::{self, Msg, Peer};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

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
pub struct Connection {
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

impl Connection {
    pub fn new(sock: TcpStream, addr: SocketAddr, proto: Proto) -> Connection {
        let now = Instant::now();
        Connection {
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
    pub fn connect(addr: &str, from: Peer, secret: Option<&str>) -> io::Result<Connection> {
        let sock_addr = resolve(addr)?;
        let sock = TcpStream::connect(sock_addr)?;
        let mut conn = Connection::new(sock, sock_addr, Proto::Node { peer: None });
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
