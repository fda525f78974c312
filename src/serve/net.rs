//! The server's ports: TLS from the configured PEM files, the refusal to answer analysts in
//! plain text outside loopback, the bound on open connections, and the login deadline.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ServeConfig;

/// The certificate chain and private key, read and checked at start.
pub struct TlsFiles {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

/// The TLS files of the configuration: both or neither; a file that cannot be read stops the
/// server at start.
pub fn tls_files(cfg: &ServeConfig) -> io::Result<Option<TlsFiles>> {
    match (&cfg.tls_cert, &cfg.tls_key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            let read = |p: &std::path::Path, what: &str| {
                std::fs::read(p).map_err(|e| {
                    io::Error::new(e.kind(), format!("serve.{what} {}: {e}", p.display()))
                })
            };
            Ok(Some(TlsFiles {
                cert: read(cert, "tls_cert")?,
                key: read(key, "tls_key")?,
            }))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "serve.tls_cert and serve.tls_key go together: set both or neither",
        )),
    }
}

/// Binds an analysts' port, refusing an address other than loopback without TLS: tokens and
/// answers never cross a network in plain text.
pub async fn bind(addr: &str, what: &str, tls: bool) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("{what} on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    if !tls && !local.ip().is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{what} on {local} is not loopback: set serve.tls_cert and serve.tls_key \
                 (tip does not answer analysts in plain text over a network)"
            ),
        ));
    }
    Ok(listener)
}

/// A connection that holds one of the port's places while it is open; a watched one
/// (Flight SQL) is ended when no call has been authorised on it by its login deadline.
pub struct Limited {
    io: TcpStream,
    _place: OwnedSemaphorePermit,
    watch: Option<Watch>,
}

/// The connections of a port that have not yet made an authorised call, by peer address:
/// the protocol server marks one when a call on it passes the token check.
#[derive(Clone, Default)]
pub struct Logins(Arc<std::sync::Mutex<std::collections::HashMap<SocketAddr, Arc<AtomicBool>>>>);

impl Logins {
    /// A call from `peer` was authorised: its connection keeps its place.
    pub fn mark(&self, peer: Option<SocketAddr>) {
        let Some(peer) = peer else { return };
        if let Some(flag) = self.lock().get(&peer) {
            flag.store(true, Ordering::Release);
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<SocketAddr, Arc<AtomicBool>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The login deadline of one connection.
struct Watch {
    peer: SocketAddr,
    logins: Logins,
    authorised: Arc<AtomicBool>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Drop for Watch {
    /// Forgets this connection (and only it: a new connection from the same address may
    /// already be registered).
    fn drop(&mut self) {
        let mut logins = self.logins.lock();
        if logins
            .get(&self.peer)
            .is_some_and(|f| Arc::ptr_eq(f, &self.authorised))
        {
            logins.remove(&self.peer);
        }
    }
}

/// [`accept`], with a login deadline: a connection on which no call is authorised within
/// `within` is ended (reads fail), and its place freed.
pub async fn accept_watched(
    listener: &TcpListener,
    places: &Arc<Semaphore>,
    what: &str,
    logins: &Logins,
    within: std::time::Duration,
) -> Limited {
    let mut c = accept(listener, places, what).await;
    if let Ok(peer) = c.io.peer_addr() {
        let authorised = Arc::new(AtomicBool::new(false));
        logins.lock().insert(peer, authorised.clone());
        c.watch = Some(Watch {
            peer,
            logins: logins.clone(),
            authorised,
            deadline: Box::pin(tokio::time::sleep(within)),
        });
    }
    c
}

/// Accepts the next connection that finds a place; one over the limit is closed at once
/// (`serve.max_connections`), and a failed accept is reported and skipped.
pub async fn accept(listener: &TcpListener, places: &Arc<Semaphore>, what: &str) -> Limited {
    loop {
        let (io, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("tip serve ({what}): accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        match places.clone().try_acquire_owned() {
            Ok(place) => {
                io.set_nodelay(true).ok();
                return Limited {
                    io,
                    _place: place,
                    watch: None,
                };
            }
            Err(_) => {
                let limit = match what {
                    "HTTP" => "serve.max_http_connections",
                    _ => "serve.max_connections",
                };
                eprintln!("tip serve ({what}): connection refused: {limit} reached");
                drop(io);
            }
        }
    }
}

impl Limited {
    /// The peer's address, if the socket still has one.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.io.peer_addr().ok()
    }

    /// The connection and the place it holds (a protocol server that takes a plain socket
    /// keeps the place for as long as it serves the connection).
    pub fn into_parts(self) -> (TcpStream, OwnedSemaphorePermit) {
        let Limited { io, _place, .. } = self;
        (io, _place)
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(w) = self.watch.as_mut()
            && !w.authorised.load(Ordering::Acquire)
            && w.deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no authorised call within serve.login_timeout_seconds",
            )));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Limited {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
