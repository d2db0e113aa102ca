//! The listener, bounded so that nobody who can reach the port can hurt the probes: at most
//! [`Limits::max_connections`] connections at once (more are closed as soon as they are
//! accepted, so they never sit on a file descriptor), a deadline for a request's headers, a
//! lifetime for every connection, and a graceful drain on shutdown.
//!
//! The daemon also raises its soft open-file limit to the hard one at start; the connection cap
//! is a quarter of it at most, so three quarters stay for S3 connections.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What one client may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, and to start the next request on an idle
    /// keep-alive connection.
    pub header_read_timeout: Duration,
    /// Longest a connection lives; then it is closed gracefully (after its response).
    pub lifetime: Duration,
    /// Time in-flight responses get on shutdown.
    pub drain: Duration,
}

impl Limits {
    /// Limits for a process that may open `open_files` descriptors.
    pub fn for_open_files(open_files: u64) -> Self {
        Limits {
            max_connections: (open_files / 4).clamp(8, 256) as usize,
            header_read_timeout: Duration::from_secs(10),
            lifetime: Duration::from_secs(300),
            drain: Duration::from_secs(5),
        }
    }
}

/// Raises the soft limit on open files to the hard limit and returns the limit in force (1024
/// when it cannot be read).
pub fn raise_open_files_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer,
        // which lives on this stack frame for the duration of the calls.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return 1024;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
        }
        lim.rlim_cur
    }
    #[cfg(not(unix))]
    {
        1024
    }
}

/// Serves `router` on `listener` within `limits` until `token` is cancelled, then drains;
/// over TLS when `tls` is given (the handshake, too, must end within the header timeout).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    token: CancellationToken,
    limits: Limits,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut refused: u64 = 0;
    loop {
        let (stream, _) = tokio::select! {
            _ = token.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    max = limits.max_connections,
                    refused,
                    "HTTP connection limit reached; new connections are closed at once"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (router, token, acceptor) = (router.clone(), token.clone(), acceptor.clone());
        connections.spawn(async move {
            match acceptor {
                None => connection(stream, router, &token, limits).await,
                Some(a) => {
                    let handshake = a.accept(stream);
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(limits.header_read_timeout, handshake).await
                    {
                        connection(tls, router, &token, limits).await;
                    }
                }
            }
            drop(slot);
        });
    }
    connections.close();
    let _ = tokio::time::timeout(limits.drain, connections.wait()).await;
}

/// Serves one connection until it ends, its lifetime is up or the daemon stops.
async fn connection<I>(io: I, router: axum::Router, token: &CancellationToken, limits: Limits)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let service = TowerToHyperService::new(router);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    // Its lifetime is up, or the daemon stops: finish the response in flight, then close.
    let time_to_close = async {
        tokio::select! {
            _ = tokio::time::sleep(limits.lifetime) => {}
            _ = token.cancelled() => {}
        }
    };
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = time_to_close => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.drain, conn).await;
        }
    }
}
