//! How many client connections are open now, and how many of them wait parked.
//!
//! An operator sizing an edge for browsers' idle keep-alive connections wants both
//! numbers (nginx's `stub_status` gives its "waiting" connections, HAProxy its
//! `CurrConns`): open connections cost a descriptor and kernel buffers each, busy ones
//! also hyper's buffers and a request's state, parked ones little more than their
//! socket (see [`crate::parking`]). A parked count far below the idle connections a
//! load balancer holds means connections keep hyper's buffers while idle, which is
//! what the memory benchmark (`bench/memory.sh`) would show as kilobytes per
//! connection.
//!
//! Counted with a guard each: an open connection's [`OpenConnection`] lives in its
//! [`ConnInfo`](crate::request::ConnInfo), dropped with the connection's last state;
//! a parked wait's [`Parked`] lives in the wait, dropped with it however it ends (a
//! head arrived, the client left, the watchdog cut it, the listener drained). One
//! relaxed atomic add each way, per connection and per park, never per request on a
//! busy connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The data plane's client connection counts (all listeners).
#[derive(Debug, Default)]
pub(crate) struct ConnectionCounts {
    open: AtomicU64,
    parked: AtomicU64,
}

/// A snapshot of [`ConnectionCounts`] (also what `/status` shows as `connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ClientConnections {
    /// Client connections open now, plain and TLS, HTTP/1 and HTTP/2, tunnels included.
    pub open: u64,
    /// HTTP/1 connections waiting for a request head with none of hyper's buffers:
    /// parked between requests, or new and not yet sent a whole head.
    pub parked: u64,
}

impl ConnectionCounts {
    /// Counts a connection open until the returned guard is dropped.
    pub(crate) fn opened(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Relaxed);
        OpenConnection(self.clone())
    }

    /// Counts a connection parked until the returned guard is dropped.
    pub(crate) fn parked(&self) -> Parked<'_> {
        self.parked.fetch_add(1, Relaxed);
        Parked(&self.parked)
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> ClientConnections {
        ClientConnections {
            open: self.open.load(Relaxed),
            parked: self.parked.load(Relaxed),
        }
    }
}

/// One open client connection, counted until dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection(Arc<ConnectionCounts>);

impl OpenConnection {
    /// The counts this connection is counted in (its parked waits count there too).
    pub(crate) fn counts(&self) -> &ConnectionCounts {
        &self.0
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// One parked wait for a request head, counted until dropped.
#[derive(Debug)]
pub(crate) struct Parked<'a>(&'a AtomicU64);

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_while_they_live() {
        let counts = Arc::new(ConnectionCounts::default());
        let first = counts.opened();
        let second = counts.opened();
        let parked = first.counts().parked();
        assert_eq!(counts.snapshot(), ClientConnections { open: 2, parked: 1 });
        drop(parked);
        drop(second);
        assert_eq!(counts.snapshot(), ClientConnections { open: 1, parked: 0 });
        drop(first);
        assert_eq!(counts.snapshot(), ClientConnections::default());
    }
}
