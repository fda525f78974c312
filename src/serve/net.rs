//! The analysts' protocol ports (Flight SQL, Postgres): TLS from the configured PEM files,
//! the refusal to answer in plain text outside loopback, and the bound on open connections.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
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

/// A connection that holds one of the port's places while it is open.
pub struct Limited {
    io: TcpStream,
    _place: OwnedSemaphorePermit,
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
                return Limited { io, _place: place };
            }
            Err(_) => {
                eprintln!("tip serve ({what}): connection refused: serve.max_connections reached");
                drop(io);
            }
        }
    }
}

impl Limited {
    /// The connection and the place it holds (a protocol server that takes a plain socket
    /// keeps the place for as long as it serves the connection).
    pub fn into_parts(self) -> (TcpStream, OwnedSemaphorePermit) {
        (self.io, self._place)
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
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
