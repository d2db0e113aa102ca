//! The HTTP surface: `/metrics`, `/-/healthy`, `/-/ready`, `/-/reload`, `/`, `/api/v1/status`.

pub mod page;
pub mod runbook;
pub mod server;
pub mod status;
pub mod svg;
pub mod webconfig;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::Daemon;

/// The router, serving `daemon`'s state.
pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
        .route("/", get(index))
        .route("/api/v1/status", get(api_status))
        .route("/runbook", get(|| async { Html(runbook::page()) }))
        .with_state(daemon)
}

/// The Prometheus text, streamed in chunks: each is rendered when the connection is ready for
/// it, so a scrape at 1000 targets never holds the whole 16 MiB text. A scraper whose `Accept`
/// puts the protobuf format first (Prometheus with native histograms on) gets that instead,
/// streamed a family at a time; one that puts OpenMetrics first (Prometheus' default) gets
/// OpenMetrics, with the request histogram's exemplars.
async fn metrics(State(d): State<Arc<Daemon>>, headers: axum::http::HeaderMap) -> Response {
    d.refresh_gauges();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (content_type, chunks): (&str, Box<dyn Iterator<Item = Vec<u8>> + Send>) =
        if crate::sinks::metrics::protobuf::wanted(accept) {
            let chunks = d.metrics.protobuf_chunks();
            (
                crate::sinks::metrics::protobuf::CONTENT_TYPE,
                Box::new(chunks),
            )
        } else if crate::sinks::metrics::openmetrics::wanted(accept) {
            let chunks = d.metrics.openmetrics_chunks();
            (
                crate::sinks::metrics::openmetrics::CONTENT_TYPE,
                Box::new(chunks),
            )
        } else {
            let chunks = d.metrics.render_chunks();
            ("text/plain; version=0.0.4; charset=utf-8", Box::new(chunks))
        };
    let chunks = chunks.map(|c| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(c)));
    (
        [(header::CONTENT_TYPE, content_type)],
        axum::body::Body::from_stream(futures::stream::iter(chunks)),
    )
        .into_response()
}

async fn ready(State(d): State<Arc<Daemon>>) -> Response {
    if d.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn reload(State(d): State<Arc<Daemon>>) -> Response {
    match d.reload().await {
        Ok(()) => (StatusCode::OK, "config reloaded\n").into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn index(State(d): State<Arc<Daemon>>) -> Html<String> {
    Html(page::render(&status::snapshot(&d)))
}

async fn api_status(State(d): State<Arc<Daemon>>) -> Response {
    axum::Json(status::snapshot(&d)).into_response()
}
