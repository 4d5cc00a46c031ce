//! A byte budget on what a connection may send before it authenticates.
//!
//! tungstenite buffers a WebSocket message whole before the hub sees it, up to the message
//! limit (16 MiB), and its configuration cannot be changed once the socket exists. So the bound
//! sits one level lower, on the TCP stream: until [`PreAuthLimit::lift`] is called, reads past
//! [`PRE_AUTH_BYTES_MAX`] fail, which ends the handshake or the connection. An unauthenticated
//! client therefore never makes the hub hold more than that, whatever frame length it claims.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::limits::PRE_AUTH_BYTES_MAX;

/// A stream whose reads stop after a budget until [`PreAuthLimit::lift`].
#[derive(Debug)]
pub struct PreAuthLimit<S> {
    inner: S,
    /// Bytes that may still be read; `None` once lifted.
    remaining: Option<usize>,
    /// What the budget is for, as its error says (`authentication`, `the upgrade`).
    until: &'static str,
}

impl<S> PreAuthLimit<S> {
    /// Wraps `inner` with the budget [`PRE_AUTH_BYTES_MAX`].
    pub fn new(inner: S) -> Self {
        PreAuthLimit::with_budget(inner, PRE_AUTH_BYTES_MAX, "authentication")
    }

    /// Wraps `inner` with a budget of `bytes` until `until` (the relay server bounds what a
    /// hub sends before its WebSocket upgrade with it).
    pub fn with_budget(inner: S, bytes: usize, until: &'static str) -> Self {
        PreAuthLimit {
            inner,
            remaining: Some(bytes),
            until,
        }
    }

    /// Removes the budget (the connection authenticated).
    pub fn lift(&mut self) {
        self.remaining = None;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PreAuthLimit<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(remaining) = this.remaining else {
            return Pin::new(&mut this.inner).poll_read(context, buf);
        };
        if remaining == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the read budget ran out before {}", this.until),
            )));
        }
        let want = remaining.min(buf.remaining());
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
        ready!(Pin::new(&mut this.inner).poll_read(context, &mut limited))?;
        let read = limited.filled().len();
        buf.advance(read);
        this.remaining = Some(remaining - read);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PreAuthLimit<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(context, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn reads_stop_at_the_budget_until_lifted() {
        let data = vec![7u8; PRE_AUTH_BYTES_MAX + 100];
        let mut limited = PreAuthLimit::new(&data[..]);
        let mut first = vec![0u8; PRE_AUTH_BYTES_MAX];
        limited
            .read_exact(&mut first)
            .await
            .expect("the budget is readable");
        let mut more = [0u8; 10];
        let refused = limited
            .read(&mut more)
            .await
            .expect_err("one byte past the budget fails");
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        limited.lift();
        let mut rest = Vec::new();
        limited
            .read_to_end(&mut rest)
            .await
            .expect("lifted, the rest reads");
        assert_eq!(rest.len(), 100);
    }
}
