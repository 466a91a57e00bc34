//! Tunnels: client connections upgraded (WebSocket) and spliced to a backend
//! connection, and who owns them.
//!
//! Every tunnel belongs to the generation that routed its upgrade request, and holds
//! that generation (an `Arc`) for as long as it is open: its counts of open tunnels per
//! route, pool and backend ([`Tunnels`]) say where long-lived traffic still goes after
//! a swap. A swap does not move a tunnel; [`Tunnels::drain`] closes the ones open at
//! that moment after a grace period, which the control plane asks for when it rolls a
//! generation back (`[safety] rolled_back_tunnels = "drain"`), so that their clients
//! reconnect through the restored generation.
//!
//! The bytes are copied both ways by [`crate::splice`]: no buffer while both sides keep
//! up or nothing moves, back-pressure (nothing more is read from a side until the other
//! has taken what was read), and half-close (one side's end of stream is passed on as a
//! shutdown of the other's write half, while the other direction goes on). The tunnel ends when
//! both directions have ended, when either side fails, when no byte has moved either
//! way for the route's `tunnel_idle_timeout`, or when a drain's grace has passed; both
//! connections are then dropped, which closes them.

use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::coarse_clock::{coarse_instant, coarse_now_ms};
use crate::generation::Generation;

/// Open and opened tunnels of one route, pool or backend.
#[derive(Debug, Default)]
pub struct TunnelCount {
    open: AtomicU64,
    opened: AtomicU64,
}

impl TunnelCount {
    /// Tunnels open now.
    pub fn open(&self) -> u64 {
        self.open.load(Relaxed)
    }

    /// Tunnels opened since the generation was compiled.
    pub fn opened(&self) -> u64 {
        self.opened.load(Relaxed)
    }

    fn enter(&self) {
        self.open.fetch_add(1, Relaxed);
        self.opened.fetch_add(1, Relaxed);
    }

    fn leave(&self) {
        self.open.fetch_sub(1, Relaxed);
    }
}

/// The tunnels of one generation: counts, and the drain signal.
#[derive(Debug)]
pub struct Tunnels {
    total: TunnelCount,
    routes: Box<[TunnelCount]>,
    /// Per pool: the pool's count, and one per backend in config order.
    pools: Box<[(TunnelCount, Box<[TunnelCount]>)]>,
    /// Tunnels ended because they carried nothing for their idle timeout.
    idle_closed: AtomicU64,
    /// Tunnels ended by a drain.
    drained: AtomicU64,
    /// When the tunnels open at the last drain are closed; each tunnel only heeds
    /// drains asked for after it opened.
    drain: watch::Sender<Option<Instant>>,
}

impl Tunnels {
    /// Counters for `routes` routes and pools of the given backend counts.
    pub(crate) fn new(routes: usize, backends_per_pool: &[usize]) -> Self {
        Self {
            total: TunnelCount::default(),
            routes: (0..routes).map(|_| TunnelCount::default()).collect(),
            pools: backends_per_pool
                .iter()
                .map(|&n| {
                    let backends = (0..n).map(|_| TunnelCount::default()).collect();
                    (TunnelCount::default(), backends)
                })
                .collect(),
            idle_closed: AtomicU64::new(0),
            drained: AtomicU64::new(0),
            drain: watch::Sender::new(None),
        }
    }

    /// All of the generation's tunnels.
    pub fn total(&self) -> &TunnelCount {
        &self.total
    }

    /// The tunnels of one route (by index), if it exists.
    pub fn route(&self, route: usize) -> Option<&TunnelCount> {
        self.routes.get(route)
    }

    /// The tunnels to one pool (by index), if it exists.
    pub fn pool(&self, pool: usize) -> Option<&TunnelCount> {
        self.pools.get(pool).map(|(count, _)| count)
    }

    /// The tunnels to one backend of a pool (by indexes), if it exists.
    pub fn backend(&self, pool: usize, backend: usize) -> Option<&TunnelCount> {
        self.pools.get(pool).and_then(|(_, b)| b.get(backend))
    }

    /// Tunnels closed because nothing moved for their idle timeout.
    pub fn idle_closed(&self) -> u64 {
        self.idle_closed.load(Relaxed)
    }

    /// Tunnels closed by a drain.
    pub fn drained(&self) -> u64 {
        self.drained.load(Relaxed)
    }

    /// Closes every tunnel open now once `grace` has passed (tunnels opened later are
    /// not affected). Returns how many were open when asked.
    pub fn drain(&self, grace: Duration) -> u64 {
        let open = self.total.open();
        self.drain.send_replace(Some(Instant::now() + grace));
        open
    }
}

/// The generations that have opened tunnels, held weakly: what `/status` lists as
/// tunnel owners, including generations no longer serving. Touched once per tunnel
/// opened, never per request.
#[derive(Debug, Default)]
pub(crate) struct TunnelOwners(Mutex<Vec<Weak<Generation>>>);

impl TunnelOwners {
    /// Notes that `generation` opened a tunnel.
    pub(crate) fn note(&self, generation: &Arc<Generation>) {
        let mut owners = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        owners.retain(|owner| owner.strong_count() > 0);
        if !owners
            .iter()
            .any(|owner| std::ptr::eq(owner.as_ptr(), Arc::as_ptr(generation)))
        {
            owners.push(Arc::downgrade(generation));
        }
    }

    /// The noted generations still alive with tunnels open.
    pub(crate) fn with_open_tunnels(&self) -> Vec<Arc<Generation>> {
        let owners = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        owners
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|generation| generation.tunnels.total().open() > 0)
            .collect()
    }
}

/// One open tunnel, counted where it goes until it is dropped.
pub(crate) struct TunnelTicket {
    generation: Arc<Generation>,
    route: usize,
    pool: usize,
    backend: usize,
}

impl TunnelTicket {
    /// Counts a tunnel of `generation` on `route` to `backend` of `pool`.
    pub(crate) fn open(
        generation: Arc<Generation>,
        route: usize,
        pool: usize,
        backend: usize,
    ) -> Self {
        let tunnels = &generation.tunnels;
        tunnels.total.enter();
        tunnels.route(route).map(TunnelCount::enter);
        tunnels.pool(pool).map(TunnelCount::enter);
        tunnels.backend(pool, backend).map(TunnelCount::enter);
        Self {
            generation,
            route,
            pool,
            backend,
        }
    }
}

impl Drop for TunnelTicket {
    fn drop(&mut self) {
        let tunnels = &self.generation.tunnels;
        tunnels.total.leave();
        tunnels.route(self.route).map(TunnelCount::leave);
        tunnels.pool(self.pool).map(TunnelCount::leave);
        tunnels
            .backend(self.pool, self.backend)
            .map(TunnelCount::leave);
    }
}

/// Why a tunnel ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Both sides closed (or one failed).
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// A drain's grace passed.
    Drained,
}

/// Copies bytes between `client` and `backend` until the tunnel ends (see the module
/// docs), then drops both, which closes them.
pub(crate) async fn relay<C, B>(
    client: C,
    backend: B,
    idle_timeout: Duration,
    ticket: TunnelTicket,
) -> Ended
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last = Arc::new(AtomicU64::new(coarse_now_ms()));
    let mut client = Moving::new(client, last.clone());
    let mut backend = Moving::new(backend, last.clone());
    let mut drain = ticket.generation.tunnels.drain.subscribe();
    let mut drain_at: Option<Instant> = None;
    let mut copy = pin!(crate::splice::splice(&mut client, &mut backend));
    let ended = loop {
        let idle_at = Instant::from_std(coarse_instant(last.load(Relaxed))) + idle_timeout;
        let wake_at = drain_at.map_or(idle_at, |at| at.min(idle_at));
        tokio::select! {
            copied = &mut copy => {
                if let Err(error) = copied {
                    tracing::debug!(%error, "tunnel ended with an error");
                }
                break Ended::Closed;
            }
            () = tokio::time::sleep_until(wake_at) => {
                let now = Instant::now();
                if drain_at.is_some_and(|at| at <= now) {
                    break Ended::Drained;
                }
                // The last byte may have moved while this slept: look again.
                if Instant::from_std(coarse_instant(last.load(Relaxed))) + idle_timeout <= now {
                    break Ended::Idle;
                }
            }
            changed = drain.changed(), if drain_at.is_none() => match changed {
                Ok(()) => drain_at = *drain.borrow_and_update(),
                // The generation is gone, which it cannot be while this holds it.
                Err(_) => break Ended::Closed,
            },
        }
    };
    let tunnels = &ticket.generation.tunnels;
    match ended {
        Ended::Idle => {
            tunnels.idle_closed.fetch_add(1, Relaxed);
            tracing::debug!(timeout = ?idle_timeout, "tunnel idle: closed");
        }
        Ended::Drained => {
            tunnels.drained.fetch_add(1, Relaxed);
            tracing::debug!(generation = ticket.generation.id, "tunnel drained: closed");
        }
        Ended::Closed => {}
    }
    ended
}

/// One side of a tunnel, noting on the coarse clock each time bytes move through it.
struct Moving<T> {
    io: T,
    last: Arc<AtomicU64>,
}

impl<T> Moving<T> {
    fn new(io: T, last: Arc<AtomicU64>) -> Self {
        Self { io, last }
    }

    #[inline]
    fn moved(&self) {
        self.last.store(coarse_now_ms(), Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Moving<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.moved();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Moving<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            this.moved();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
