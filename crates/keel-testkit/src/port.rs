//! Loopback addresses where nothing listens.

use std::net::SocketAddr;

/// An address on 127.0.0.1 where nothing listens (yet): bound to port 0, then released.
/// For a process to bind later, or for a backend that refuses connections.
pub fn free_addr() -> SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr")
}

/// A port on 127.0.0.1 where nothing listens (yet): see [`free_addr`].
pub fn free_port() -> u16 {
    free_addr().port()
}
