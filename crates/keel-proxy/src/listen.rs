//! Binding a client listener with its own accept queue (`[listeners.NAME] backlog`),
//! and the kernel's count of connections dropped because such a queue was full.
//!
//! `TcpListener::bind` (tokio, mio and std alike) asks for a backlog of 128: a burst
//! of 5,000 connects then overflowed the queue thousands of times, and each dropped
//! SYN cost its client a one-second retransmit. nginx asks for 511, HAProxy for more.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Where Linux says the most any listen queue may hold.
const SOMAXCONN_PATH: &str = "/proc/sys/net/core/somaxconn";
/// Where Linux keeps its TCP extended counters (`TcpExt:` header and value lines).
const NETSTAT_PATH: &str = "/proc/net/netstat";

/// Binds `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does) and listens with
/// `backlog`, capped by `net.core.somaxconn` where that can be read. Returns the
/// listener and the backlog asked of the kernel. Must run inside a tokio runtime.
///
/// # Errors
/// When the socket cannot be made, bound or put to listening.
pub fn bind_listener(addr: SocketAddr, backlog: u32) -> std::io::Result<(TcpListener, u32)> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let backlog = somaxconn().map_or(backlog, |cap| backlog.min(cap)).max(1);
    let listener = socket.listen(backlog)?;
    Ok((listener, backlog))
}

/// `net.core.somaxconn`: the kernel's cap on any listen backlog (`None` off Linux).
pub fn somaxconn() -> Option<u32> {
    std::fs::read_to_string(SOMAXCONN_PATH)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Connections the kernel dropped because a listen queue was full (`TcpExt
/// ListenOverflows`), since boot, for every listener of this network namespace, not
/// only Keel's. `None` where it cannot be read (not Linux, no `/proc`).
pub fn listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string(NETSTAT_PATH).ok()?;
    tcp_ext_counter(&text, "ListenOverflows")
}

/// One counter of the `TcpExt:` lines of `/proc/net/netstat` (a line of names, then a
/// line of values in the same order).
fn tcp_ext_counter(netstat: &str, name: &str) -> Option<u64> {
    let mut lines = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let names = lines.next()?;
    let values = lines.next()?;
    let at = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overflow_counter_is_read_by_name() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                       TcpExt: 0 2991 3001\n\
                       IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(tcp_ext_counter(netstat, "ListenOverflows"), Some(2991));
        assert_eq!(tcp_ext_counter(netstat, "Missing"), None);
        assert_eq!(tcp_ext_counter("", "ListenOverflows"), None);
    }

    #[tokio::test]
    async fn the_backlog_is_capped_by_somaxconn() {
        let (listener, backlog) =
            bind_listener(SocketAddr::from(([127, 0, 0, 1], 0)), u32::MAX).expect("bind");
        assert!(listener.local_addr().is_ok());
        if let Some(cap) = somaxconn() {
            assert_eq!(backlog, cap);
        }
    }
}
