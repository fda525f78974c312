//! The size of every message a Postgres client sends, checked from its header before pgwire
//! buffers it. pgwire reads a message whole before any handler sees it, and takes up to 1 GiB:
//! one socket that never logged in could make the server hold a gigabyte. Here the bytes are
//! followed as they arrive (above TLS), each message's declared length is read from its header,
//! and a message over the limit ends the connection before its body is read:
//!
//! - the startup message: at most 10 000 bytes (Postgres's own limit);
//! - every other message before the login completes (the SCRAM exchange): at most 16 KiB;
//! - after it: the longest statement the gate accepts, twice over (a Parse and its Bind's
//!   parameters), and at least 1 MiB.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::login;

/// Postgres's limit on the startup message.
pub const MAX_STARTUP_BYTES: u64 = 10_000;
/// Any message before the login completes (password and SASL messages are a few hundred).
pub const MAX_BEFORE_LOGIN_BYTES: u64 = 16 * 1024;

/// Where the reader stands in the client's stream of messages.
#[derive(Debug, Clone, Copy)]
enum At {
    /// Reading an untagged message's 4-byte length (the startup message, or an SSL or GSS
    /// encryption request before it).
    Untagged { header: [u8; 4], have: usize },
    /// Reading a message's tag and 4-byte length.
    Tagged { header: [u8; 5], have: usize },
    /// Inside a message's body: this many bytes left; then `next_untagged` says what follows.
    Body { left: u64, next_untagged: bool },
}

/// A message declared longer than its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub declared: u64,
    pub limit: u64,
    pub logged_in: bool,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.logged_in {
            true => write!(
                f,
                "a message of {} bytes is over this server's limit of {} bytes (twice the longest statement, query.max_sql_tokens)",
                self.declared, self.limit
            ),
            false => write!(
                f,
                "a message of {} bytes before login is over the limit of {} bytes",
                self.declared, self.limit
            ),
        }
    }
}

impl std::error::Error for TooLarge {}

/// The message boundaries of a client's stream, and the limits they are held to.
#[derive(Debug)]
pub struct Frames {
    at: At,
    login: Arc<AtomicU8>,
    after_login: u64,
}

impl Frames {
    /// A connection that has not sent its startup message yet; `after_login` is the limit once
    /// the login in `login` completes.
    pub fn new(login: Arc<AtomicU8>, after_login: u64) -> Frames {
        Frames {
            at: At::Untagged {
                header: [0; 4],
                have: 0,
            },
            login,
            after_login,
        }
    }

    fn limit(&self, untagged: bool) -> (u64, bool) {
        if untagged {
            return (MAX_STARTUP_BYTES, false);
        }
        match self.login.load(Ordering::Acquire) == login::DONE {
            true => (self.after_login, true),
            false => (MAX_BEFORE_LOGIN_BYTES, false),
        }
    }

    /// Follows `bytes`, the next the client sent; an error at the first header over its limit.
    pub fn follow(&mut self, mut bytes: &[u8]) -> Result<(), TooLarge> {
        while !bytes.is_empty() {
            match &mut self.at {
                At::Body {
                    left,
                    next_untagged,
                } => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.at = next(*next_untagged);
                    }
                }
                At::Untagged { header, have } => {
                    let n = (4 - *have).min(bytes.len());
                    header[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have == 4 {
                        let len = u32::from_be_bytes(*header) as u64;
                        self.check(len, true)?;
                        // An 8-byte request (SSL or GSS encryption) is followed by the
                        // startup message, also untagged.
                        self.body(len.saturating_sub(4), len == 8);
                    }
                }
                At::Tagged { header, have } => {
                    let n = (5 - *have).min(bytes.len());
                    header[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have == 5 {
                        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
                        self.check(len as u64, false)?;
                        self.body((len as u64).saturating_sub(4), false);
                    }
                }
            }
        }
        Ok(())
    }

    fn check(&self, declared: u64, untagged: bool) -> Result<(), TooLarge> {
        let (limit, logged_in) = self.limit(untagged);
        match declared > limit {
            true => Err(TooLarge {
                declared,
                limit,
                logged_in,
            }),
            false => Ok(()),
        }
    }

    fn body(&mut self, left: u64, next_untagged: bool) {
        self.at = match left {
            0 => next(next_untagged),
            _ => At::Body {
                left,
                next_untagged,
            },
        };
    }
}

fn next(untagged: bool) -> At {
    match untagged {
        true => At::Untagged {
            header: [0; 4],
            have: 0,
        },
        false => At::Tagged {
            header: [0; 5],
            have: 0,
        },
    }
}

/// A client stream whose every message is held to [`Frames`]' limits: reading fails (and the
/// connection ends) at the header of a message over its limit, before its body is read.
pub struct Capped<T> {
    io: T,
    frames: Frames,
    /// The refusal, once made: every later read fails with it too.
    refused: Option<TooLarge>,
}

impl<T> Capped<T> {
    pub fn new(io: T, frames: Frames) -> Capped<T> {
        Capped {
            io,
            frames,
            refused: None,
        }
    }

    /// Follows bytes read before the stream was wrapped.
    pub fn follow(&mut self, bytes: &[u8]) -> Result<(), TooLarge> {
        self.frames
            .follow(bytes)
            .inspect_err(|e| self.refused = Some(*e))
    }

    /// The message that was refused, if one was.
    pub fn refused(&self) -> Option<TooLarge> {
        self.refused
    }
}

fn refusal(e: TooLarge) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<T: AsyncRead + Unpin> AsyncRead for Capped<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.refused {
            return Poll::Ready(Err(refusal(e)));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if let Err(e) = this.frames.follow(new) {
                    this.refused = Some(e);
                    buf.set_filled(before);
                    return Poll::Ready(Err(refusal(e)));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Capped<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup() -> Vec<u8> {
        let body = b"\x00\x03\x00\x00user\x00a\x00\x00";
        let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        m.extend_from_slice(body);
        m
    }

    fn tagged(tag: u8, len: u32, body: usize) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(b'x', body));
        m
    }

    #[test]
    fn every_header_is_held_to_the_limit_of_its_moment_whatever_the_chunks() {
        let login = Arc::new(AtomicU8::new(login::PENDING));
        let mut stream = vec![0, 0, 0, 8, 4, 210, 22, 47]; // an SSL request
        stream.extend(startup());
        stream.extend(tagged(b'p', 4 + 100, 100));
        // Byte by byte, or all at once: the same boundaries.
        for chunk in [1, 3, 7, stream.len()] {
            let mut f = Frames::new(login.clone(), 1 << 20);
            for c in stream.chunks(chunk) {
                f.follow(c).unwrap();
            }
            // Before login, a 1 MiB message is refused at its header.
            let e = f.follow(&tagged(b'Q', 1 << 20, 0)).unwrap_err();
            assert_eq!(
                (e.declared, e.limit, e.logged_in),
                (1 << 20, MAX_BEFORE_LOGIN_BYTES, false)
            );
        }
        // After login, up to the configured limit.
        let mut f = Frames::new(login.clone(), 1 << 20);
        f.follow(&startup()).unwrap();
        login.store(login::DONE, Ordering::Release);
        f.follow(&tagged(b'Q', 4 + 50_000, 50_000)).unwrap();
        f.follow(&tagged(b'Q', 1 << 20, 0)).unwrap();
        let mut f = Frames::new(login, 1 << 20);
        f.follow(&startup()).unwrap();
        assert!(f.follow(&tagged(b'Q', (1 << 20) + 1, 0)).is_err());
        // A startup message over Postgres's own limit.
        let mut f = Frames::new(Arc::new(AtomicU8::new(login::PENDING)), 1 << 20);
        assert!(f.follow(&(1u32 << 30).to_be_bytes()).is_err());
    }
}
