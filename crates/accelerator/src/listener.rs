//! Accepting connections from strangers: how many, for how long, and what a client
//! that stops reading can cost.
//!
//! `axum::serve` accepts every connection and waits on each forever, so 1,000
//! half-sent requests hold 1,000 descriptors until the process runs out. This loop
//! serves the same router with the limits of [`Limits`]:
//!
//! - **Connection caps.** A connection beyond [`Limits::max_connections`] in all, or
//!   [`Limits::max_connections_per_address`] from one address, is answered
//!   `429 RateLimited` and closed at once, so the accept queue never backs up. The
//!   slot is held by the connection's I/O, so an upgraded websocket keeps counting.
//! - **Header and idle timeout.** hyper's `header_read_timeout` closes a connection
//!   whose request headers do not arrive in time; it runs whenever the connection is
//!   idle, so it is also the keep-alive idle timeout.
//! - **Write stalls.** [`Guarded`] fails a write that stays blocked for
//!   [`Limits::write_stall_timeout`]: a client that stops reading a download loses
//!   its connection, and the buffers behind it are freed.
//! - **Descriptors.** [`raise_descriptor_limit`] lifts the soft limit to the hard one
//!   at start, and the connection cap is lowered to fit what is left.
//!
//! The request timeout (headers to answer, body included) is a layer on the router
//! ([`crate::routes::router`]). Shutdown is graceful: idle connections close, open
//! requests finish (for up to [`DRAIN`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Sleep;
use tower::ServiceExt as _;

use crate::config::Limits;

/// How long shutdown waits for open requests before it drops them.
pub const DRAIN: Duration = Duration::from_secs(10);
/// Descriptors kept back from the connection cap for the database, shard files
/// and the listener itself.
const RESERVED_DESCRIPTORS: u64 = 256;
/// What a refused connection is told before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nConnection: close\r\n\
Content-Type: application/json\r\nContent-Length: 83\r\n\r\n\
{\"code\":\"RateLimited\",\"message\":\"too many open connections; try again in a second\"}";

/// Raises the process's open-file soft limit to its hard limit (on Unix) and
/// returns the limit now in force, if it is known.
pub fn raise_descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(e) => {
                tracing::warn!(%e, "could not raise the open-file limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    None
}

/// The connection cap that fits `descriptors` open files.
pub fn fit_connections(wanted: usize, descriptors: Option<u64>) -> usize {
    match descriptors {
        Some(n) => wanted.min(usize::try_from(n.saturating_sub(RESERVED_DESCRIPTORS)).unwrap_or(usize::MAX)).max(1),
        None => wanted,
    }
}

/// Counts open connections, in all and per client address.
#[derive(Default)]
pub struct Gate {
    /// Open connections in all, and per address (an address leaves the map with its
    /// last one).
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; frees its place when dropped.
pub struct Slot {
    /// The gate to give the place back to.
    gate: Arc<Gate>,
    /// Whose place it is.
    address: IpAddr,
}

impl Gate {
    fn open(&self) -> std::sync::MutexGuard<'_, (usize, HashMap<IpAddr, usize>)> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for a connection from `address`, unless either cap is reached.
    pub fn admit(self: &Arc<Self>, address: IpAddr, total_cap: usize, per_address_cap: usize) -> Option<Slot> {
        let mut guard = self.open();
        let (total, per_address) = &mut *guard;
        let mine = per_address.entry(address).or_insert(0);
        if *total >= total_cap || *mine >= per_address_cap {
            if *mine == 0 {
                per_address.remove(&address);
            }
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(Slot { gate: Arc::clone(self), address })
    }

    /// Open connections in all.
    pub fn total(&self) -> usize {
        self.open().0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self.gate.open();
        let (total, per_address) = &mut *guard;
        *total -= 1;
        if let Some(n) = per_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                per_address.remove(&self.address);
            }
        }
    }
}

/// A client connection with its [`Slot`] and a deadline on blocked writes.
pub struct Guarded {
    /// The socket.
    stream: TcpStream,
    /// Held as long as the socket is open, upgraded or not.
    _slot: Slot,
    /// How long a write may stay blocked.
    stall: Duration,
    /// Running while a write is blocked; cleared when one makes progress.
    blocked_since: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    /// Wraps an admitted socket.
    pub fn new(stream: TcpStream, slot: Slot, stall: Duration) -> Self {
        Guarded { stream, _slot: slot, stall, blocked_since: None }
    }

    /// Turns a pending write into a `TimedOut` error once it has been blocked too long.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.blocked_since = None;
            return poll;
        }
        let stall = self.stall;
        let timer = self.blocked_since.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the write-stall timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then
/// stops accepting and drains open requests for up to [`DRAIN`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    gate: Arc<Gate>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let max_connections = fit_connections(limits.max_connections, raise_descriptor_limit());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    // Every connection task holds a sender; when the last is gone, all are done.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let (stopping, stop) = watch::channel(false);
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted:
                    // keep serving the ones already open, and try again shortly.
                    tracing::warn!(%e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let per_address_cap =
            if limits.trusted_proxies.contains(&peer.ip()) { usize::MAX } else { limits.max_connections_per_address };
        let Some(slot) = gate.admit(peer.ip(), max_connections, per_address_cap) else {
            // Best effort: the refusal fits any socket buffer, and is never waited on.
            let _ = stream.try_write(REFUSAL);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Guarded::new(stream, slot, limits.write_stall_timeout));
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let connection = http.serve_connection(io, service).with_upgrades();
        let (open, mut stop) = (open.clone(), stop.clone());
        tokio::spawn(async move {
            let _open = open;
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = stopped(&mut stop) => {
                    // Finish the request under way, then close; an idle one closes now.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%e, %peer, "connection ended");
            }
        });
    }

    drop(listener);
    let _ = stopping.send(true);
    drop(open);
    if tokio::time::timeout(DRAIN, all_closed.recv()).await.is_err() {
        tracing::warn!("open requests did not finish within {DRAIN:?}; dropping them");
    }
    Ok(())
}

/// Completes once the accept loop stops.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, not in a select.
    let _ = stop.wait_for(|stopping| *stopping).await.map(|_| ());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_caps_in_all_and_per_address() {
        let gate = Arc::new(Gate::default());
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let a1 = gate.admit(a, 3, 2).unwrap();
        let _a2 = gate.admit(a, 3, 2).unwrap();
        assert!(gate.admit(a, 3, 2).is_none(), "per address");
        let _b1 = gate.admit(b, 3, 2).unwrap();
        assert!(gate.admit(b, 3, 2).is_none(), "in all");
        drop(a1);
        assert_eq!(gate.total(), 2);
        assert!(gate.admit(b, 3, 2).is_some());
    }

    #[test]
    fn the_refusal_is_well_formed() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], "RateLimited");
    }

    #[test]
    fn the_connection_cap_fits_the_descriptors() {
        assert_eq!(fit_connections(16_384, Some(1024)), 768);
        assert_eq!(fit_connections(100, Some(1_000_000)), 100);
        assert_eq!(fit_connections(100, Some(10)), 1);
        assert_eq!(fit_connections(100, None), 100);
    }
}
