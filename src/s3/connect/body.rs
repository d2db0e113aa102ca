//! Request and response bodies that tell when they ended: the request's end is where the time
//! to first byte starts, the response's end is where the body phase stops. An attempt's phases
//! are reported once, when its response body ends or is dropped.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use crate::report::RequestPhases;
use crate::s3::recorder::Recording;

/// A request body that notes when hyper took its last frame.
pub struct RequestBody<B> {
    inner: B,
    pub written: Arc<OnceLock<Instant>>,
}

impl<B> RequestBody<B> {
    pub fn new(inner: B) -> Self {
        RequestBody {
            inner,
            written: Arc::default(),
        }
    }
}

impl<B: Body + Unpin> Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream() {
            let _ = this.written.set(Instant::now());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The phases of an attempt waiting for its body to end, and where to report them.
pub(crate) struct Pending {
    pub phases: RequestPhases,
    pub recording: Arc<Recording>,
}

impl Pending {
    /// Reports the phases, `body` included if it was read to the end.
    pub fn report(mut self, body: Option<std::time::Duration>) {
        self.phases.body = body;
        self.recording
            .sink
            .request_phases(&self.recording.labels, &self.phases);
    }
}

/// A response body that times its own reading and reports the attempt's phases when it ends
/// (or is dropped unread: then without the body phase).
pub struct ResponseBody<B> {
    inner: B,
    head: Instant,
    pending: Option<Pending>,
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, head: Instant, pending: Option<Pending>) -> Self {
        ResponseBody {
            inner,
            head,
            pending,
        }
    }

    fn finish(&mut self, body: Option<std::time::Duration>) {
        if let Some(p) = self.pending.take() {
            p.report(body);
        }
    }
}

impl<B> Drop for ResponseBody<B> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let took = this.head.elapsed();
        match &polled {
            Poll::Ready(None) => this.finish(Some(took)),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.finish(Some(took)),
            Poll::Ready(Some(Err(_))) => this.finish(None),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
