//! The HTTP surface: `/metrics`, `/-/healthy`, `/-/ready`, `/-/reload`, `/`, `/api/v1/status`.

pub mod page;
pub mod server;
pub mod status;
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

/// The demo's extra route: `POST /-/demo/faults/{profile}` switches the embedded server's
/// fault profile at run time (used by the end-to-end alert test, handy when demonstrating).
pub fn demo_router(faults: Arc<crate::embedded::Faults>) -> Router {
    Router::new().route(
        "/-/demo/faults/{profile}",
        post(
            move |axum::extract::Path(profile): axum::extract::Path<String>| {
                let faults = faults.clone();
                async move {
                    match crate::embedded::FaultConfig::profile(&profile) {
                        Some(f) => {
                            faults.set_all(f);
                            tracing::info!(%profile, "demo fault profile switched");
                            (StatusCode::OK, format!("fault profile {profile}\n"))
                        }
                        None => (
                            StatusCode::BAD_REQUEST,
                            format!(
                                "unknown profile {profile:?} (known: {})\n",
                                crate::embedded::FaultConfig::PROFILES.join(", ")
                            ),
                        ),
                    }
                }
            },
        ),
    )
}

/// The Prometheus text, streamed in chunks: each is rendered when the connection is ready for
/// it, so a scrape at 1000 targets never holds the whole 16 MiB text.
async fn metrics(State(d): State<Arc<Daemon>>) -> Response {
    d.refresh_gauges();
    let chunks = d
        .metrics
        .render_chunks()
        .map(|c| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(c)));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
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
