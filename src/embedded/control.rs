//! The demo's control route: switches the embedded server's fault profiles at run time. It
//! lives with the server it controls; `demo` and the end-to-end suites merge it into the
//! daemon's router.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::{FaultConfig, Faults};

/// Where a fault profile applies: `?bucket=NAME` (else every bucket) and `&requests=N` (else
/// until changed).
#[derive(Debug, serde::Deserialize)]
pub struct FaultScope {
    bucket: Option<String>,
    requests: Option<u64>,
}

/// The demo's extra routes: `POST /-/demo/faults/{profile}[?bucket=B[&requests=N]]` switches
/// the embedded server's fault profile at run time, for every bucket or one, for good or for
/// its next N requests (used by the end-to-end suites, handy when demonstrating);
/// `GET /-/demo/faults` shows the profiles in force and the ones there are.
pub fn demo_router(faults: Arc<Faults>) -> Router {
    use axum::extract::{Path, Query};
    let shown = faults.clone();
    Router::new()
        .route(
            "/-/demo/faults",
            get(move || {
                let faults = shown.clone();
                async move {
                    let mut v = serde_json::to_value(faults.profiles()).unwrap_or_default();
                    v["known"] = serde_json::json!(FaultConfig::PROFILES);
                    axum::Json(v)
                }
            }),
        )
        .route(
            "/-/demo/faults/{profile}",
            post(
                move |Path(profile): Path<String>, Query(scope): Query<FaultScope>| {
                    let faults = faults.clone();
                    async move {
                        let Some(f) = FaultConfig::profile(&profile) else {
                            let known = FaultConfig::PROFILES.join(", ");
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
                        (StatusCode::OK, format!("fault profile {profile}\n"))
                    }
                },
            ),
        )
}
