//! A non-blocking connection with its buffers, speaking RESP or the node
//! protocol, as both event loops (server and master) keep them.

use super::socket::resolve;
use super::tls::{Acceptor, NodeTls, TlsSession};
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
    /// How much of `rbuf` node frames have consumed: dropped from it once
    /// the frames read in a row are done, not once per frame (which moved
    /// the rest of the buffer for every frame: a pipeline's replies).
    rpos: usize,
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
    /// Accepted on a TLS address: the socket's bytes pass through it.
    tls: Option<TlsSession>,
}

impl Connection {
    pub fn new(sock: TcpStream, addr: SocketAddr, proto: Proto) -> Connection {
        let now = Instant::now();
        Connection {
            sock,
            addr,
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            proto,
            closing: false,
            dead: false,
            last_active: now,
            created: now,
            connecting: false,
            tls: None,
        }
    }

    /// An accepted connection that speaks TLS.
    pub fn with_tls(mut self, tls: TlsSession) -> Connection {
        self.tls = Some(tls);
        self
    }

    /// An accepted connection whose first bytes are a TLS handshake's:
    /// from now on its bytes pass through a session of `acceptor`, the
    /// bytes read so far first.
    pub fn start_tls(&mut self, acceptor: &Acceptor) {
        let mut session = match TlsSession::accept(acceptor) {
            Ok(s) => s,
            Err(_) => {
                self.dead = true;
                return;
            }
        };
        let mut plain = Vec::new();
        match session.feed(&self.rbuf, &mut plain) {
            Ok(open) => self.dead |= !open,
            Err(e) => {
                tracing::debug!(peer = %self.addr, error = %e, "closing a TLS connection");
                self.closing = true;
            }
        }
        self.rbuf = plain;
        self.tls = Some(session);
    }

    /// Whether the peer presented a certificate of the configured CA.
    pub fn peer_verified(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.peer_verified())
    }

    /// Whether it speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// How it came, for a node hello's admission.
    pub fn channel(&self) -> crate::config::Channel {
        use crate::config::Channel;
        match (self.is_tls(), self.peer_verified()) {
            (false, _) => Channel::Plain,
            (true, false) => Channel::Tls,
            (true, true) => Channel::Certified,
        }
    }

    /// Whether output waits to be written: replies, or TLS's own records
    /// (a handshake's, an alert's).
    pub fn has_output(&self) -> bool {
        !self.wbuf.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Opens a node connection to `addr`: the preamble and hello are queued
    /// and leave when the connection is established.
    /// With `tls`, the link runs over TLS (the preamble and hello leave
    /// once the handshake is done).
    pub fn connect(addr: &str, from: Peer, secret: Option<&str>, tls: Option<&NodeTls>) -> io::Result<Connection> {
        let sock_addr = resolve(addr)?;
        let sock = TcpStream::connect(sock_addr)?;
        let mut conn = Connection::new(sock, sock_addr, Proto::Node { peer: None });
        if let Some(t) = tls {
            conn.tls = Some(TlsSession::client(t, super::socket::host_of(addr))?);
        }
        conn.connecting = true;
        conn.wbuf.extend_from_slice(&wire::PREAMBLE);
        conn.send(&Msg::Hello { from, secret: secret.map(str::to_string) });
        Ok(conn)
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.sock, token, Interest::READABLE | Interest::WRITABLE)
    }

    pub fn send(&mut self, msg: &Msg) {
        wire::encode_into(msg, &mut self.wbuf);
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
        if let Some(tls) = self.tls.as_mut() {
            let before = self.rbuf.len();
            match tls.read_from(&mut self.sock, &mut self.rbuf) {
                Ok(open) => self.dead |= !open,
                Err(e) => {
                    // Not TLS (a plain client on the TLS address) or a
                    // failed handshake: the alert is sent, then it closes.
                    tracing::debug!(peer = %self.addr, error = %e, "closing a TLS connection");
                    self.closing = true;
                }
            }
            if self.rbuf.len() > before {
                self.last_active = Instant::now();
            }
            return;
        }
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
        if let Some(tls) = self.tls.as_mut() {
            let mut taken = 0;
            loop {
                match tls.write_to(&self.wbuf[taken..], &mut self.sock) {
                    Ok((n, blocked)) => {
                        taken += n;
                        if blocked || n == 0 || taken == self.wbuf.len() {
                            break;
                        }
                    }
                    Err(_) => {
                        self.dead = true;
                        break;
                    }
                }
            }
            self.wbuf.drain(..taken);
            if self.closing && self.wbuf.is_empty() && !tls.wants_write() {
                self.dead = true;
            }
            return;
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
        match wire::decode(&self.rbuf[self.rpos..], max_frame) {
            Ok(Some((msg, used))) => {
                self.rpos += used;
                if self.rpos == self.rbuf.len() {
                    self.rbuf.clear();
                    self.rpos = 0;
                }
                Some(msg)
            }
            Ok(None) => {
                self.rbuf.drain(..self.rpos);
                self.rpos = 0;
                None
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use failgroup_model::ServerId;

    /// Frames read in a row come out whole and in order, with one cut
    /// anywhere in them (more bytes arrive later), and the buffer empties.
    #[test]
    fn node_frames_in_a_row_and_cut_anywhere() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sock = std::net::TcpStream::connect(addr).unwrap();
        let msgs: Vec<Msg> = (0..50).map(|i| Msg::Hello { from: Peer::Server(ServerId(i)), secret: None }).collect();
        let mut bytes = Vec::new();
        for m in &msgs {
            wire::encode_into(m, &mut bytes);
        }
        assert_eq!(&bytes[..wire::encode(&msgs[0]).len()], &wire::encode(&msgs[0])[..]);
        for cut in [0, 1, 3, 4, 5, bytes.len() / 2, bytes.len() - 1, bytes.len()] {
            let mut c =
                Connection::new(TcpStream::from_std(sock.try_clone().unwrap()), addr, Proto::Node { peer: None });
            c.rbuf.extend_from_slice(&bytes[..cut]);
            let mut got = Vec::new();
            while let Some(m) = c.next_msg(1 << 20) {
                got.push(m);
            }
            c.rbuf.extend_from_slice(&bytes[cut..]);
            while let Some(m) = c.next_msg(1 << 20) {
                got.push(m);
            }
            assert_eq!(got, msgs, "cut at {cut}");
            assert!(c.rbuf.is_empty() && c.rpos == 0, "cut at {cut}: the buffer is consumed");
        }
    }
}
