//! A reader wrapper that tells when its stream reached its end, so that the pod is
//! deleted only once its log has been read to the last line.

use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;

/// Wraps `R`; the paired receiver turns `true` at end of stream (or on an error, or
/// when the reader is dropped).
pub struct EofSignal<R> {
    inner: R,
    done: watch::Sender<bool>,
}

impl<R> EofSignal<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> (Self, watch::Receiver<bool>) {
        let (done, rx) = watch::channel(false);
        (EofSignal { inner, done }, rx)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for EofSignal<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) if buf.filled().len() == before => {
                self.done.send_replace(true);
            }
            Poll::Ready(Err(_)) => {
                self.done.send_replace(true);
            }
            _ => {}
        }
        r
    }
}

impl<R> Drop for EofSignal<R> {
    fn drop(&mut self) {
        self.done.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn signals_at_the_end_only() {
        let (mut r, rx) = EofSignal::new(&b"ab"[..]);
        let mut one = [0u8; 1];
        r.read_exact(&mut one).await.unwrap_or_default();
        assert!(!*rx.borrow());
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap_or_default();
        assert!(*rx.borrow());
    }
}
