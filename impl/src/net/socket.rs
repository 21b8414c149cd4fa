//! Addresses and listeners.

use mio::{Interest, Token};
use std::io;
use std::net::SocketAddr;

/// The first socket address `addr` names.
/// The host part of `host:port` (an IPv6 address without its brackets):
/// the name a TLS peer's certificate is checked for.
pub fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_matches(['[', ']'])
}

pub fn resolve(addr: &str) -> io::Result<SocketAddr> {
    std::net::ToSocketAddrs::to_socket_addrs(addr)?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no address for {addr}")))
}

/// A poll with a listener on `addr` registered under `token`.
pub fn listen(addr: &str, token: Token) -> Result<(mio::Poll, mio::net::TcpListener), ListenError> {
    let fail = |error| ListenError { addr: addr.to_string(), error };
    let sock = resolve(addr).map_err(fail)?;
    let poll = mio::Poll::new().map_err(fail)?;
    let mut listener = mio::net::TcpListener::bind(sock).map_err(fail)?;
    poll.registry().register(&mut listener, token, Interest::READABLE).map_err(fail)?;
    Ok((poll, listener))
}

/// A listener could not be set up on `addr`.
#[derive(Debug)]
pub struct ListenError {
    pub addr: String,
    pub error: io::Error,
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "listen on {}: {}", self.addr, self.error)
    }
}

impl std::error::Error for ListenError {}
