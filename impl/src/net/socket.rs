//! Addresses and listeners.

use mio::{Interest, Token};
use std::io;
use std::net::SocketAddr;

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
