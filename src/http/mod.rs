//! The HTTP surface: `/metrics`, `/-/healthy`, `/-/ready`, `/-/reload`, `/`, `/api/v1/status`.

pub mod page;
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
        .with_state(daemon)
}

/// Where a fault profile applies: `?bucket=NAME` (else every bucket) and `&requests=N` (else
/// until changed).
#[derive(Debug, serde::Deserialize)]
pub struct FaultScope {
    bucket: Option<String>,
    requests: Option<u64>,
}

/// The demo's extra route: `POST /-/demo/faults/{profile}[?bucket=B[&requests=N]]` switches
/// the embedded server's fault profile at run time, for every bucket or one, for good or for
/// its next N requests (used by the end-to-end suites, handy when demonstrating).
pub fn demo_router(faults: Arc<crate::embedded::Faults>) -> Router {
    use axum::extract::{Path, Query};
    Router::new().route(
        "/-/demo/faults/{profile}",
        post(
            move |Path(profile): Path<String>, Query(scope): Query<FaultScope>| {
                let faults = faults.clone();
                async move {
                    let Some(f) = crate::embedded::FaultConfig::profile(&profile) else {
                        let known = crate::embedded::FaultConfig::PROFILES.join(", ");
                        return (
                            StatusCode::BAD_REQUEST,
                            format!("unknown profile {profile:?} (known: {known})\n"),
                        );
                    };
                    match (&scope.bucket, scope.requests) {
                        (None, None) => faults.set_all(f),
                        (Some(b), None) => faults.set_bucket(b, f),
                        (Some(b), Some(n)) => faults.set_bucket_for(b, f, n),
                        (None, Some(_)) => {
                            return (
                                StatusCode::BAD_REQUEST,
                                "requests=N needs bucket=NAME\n".to_string(),
                            );
                        }
                    }
                    tracing::info!(%profile, bucket = scope.bucket.as_deref().unwrap_or("*"),
                        requests = scope.requests, "demo fault profile switched");
                    (StatusCode::OK, format!("fault profile {profile}\n"))
                }
            },
        ),
    )
}

/// The Prometheus text, streamed in chunks: each is rendered when the connection is ready for
/// it, so a scrape at 1000 targets never holds the whole 16 MiB text. A scraper whose `Accept`
/// puts the protobuf format first (Prometheus with native histograms on) gets that instead,
/// streamed a family at a time.
async fn metrics(State(d): State<Arc<Daemon>>, headers: axum::http::HeaderMap) -> Response {
    d.refresh_gauges();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (content_type, chunks): (&str, Box<dyn Iterator<Item = Vec<u8>> + Send>) =
        if crate::sinks::protobuf::wanted(accept) {
            let chunks = d.metrics.protobuf_chunks();
            (crate::sinks::protobuf::CONTENT_TYPE, Box::new(chunks))
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
