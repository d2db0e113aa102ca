//! Opening a connection to an S3 endpoint, each phase timed: the name resolved (unless the
//! endpoint is an address), the TCP handshake, the TLS handshake for https. What was measured
//! travels with the connection ([`Establishment`]) to the first attempt that uses it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::tls::TlsSetup;

/// What opening one connection took, handed to the first attempt sent on it.
#[derive(Debug)]
pub struct Establishment {
    pub dns: Option<Duration>,
    pub connect: Duration,
    pub tls: Option<Duration>,
    /// When the connection was ready for a request.
    pub ready: Instant,
    /// The earliest notAfter of the chain the server presented (TLS only).
    pub not_after: Option<SystemTime>,
    /// Taken by the first attempt sent on the connection.
    claimed: AtomicBool,
}

impl Establishment {
    /// True for the first caller only: the attempt that opened the connection (or first
    /// used it).
    pub fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::Relaxed)
    }
}

/// A failure to open a connection, in the words the error classification reads: a name that
/// did not resolve says "dns error" (as hyper's resolver does), the rest is the I/O error.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("dns error: {0}")]
    Dns(#[source] io::Error),
    #[error("dns error: {0} resolved to no address")]
    NoAddress(String),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("TLS handshake with {host} failed: {source}")]
    Tls {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Uri(&'static str),
    /// The connect timeout ran out (resolution, TCP and TLS together).
    #[error("connection not opened within {0:?}")]
    TimedOut(Duration),
}

/// The tower service hyper's pool calls to open a connection.
#[derive(Clone)]
pub struct Dial {
    pub tls: Arc<TlsSetup>,
    pub connect_timeout: Option<Duration>,
}

impl tower_service::Service<Uri> for Dial {
    type Response = Stream;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, DialError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let dial = self.clone();
        Box::pin(async move {
            let open = dial.open(uri);
            match dial.connect_timeout {
                Some(d) => tokio::time::timeout(d, open)
                    .await
                    .unwrap_or(Err(DialError::TimedOut(d))),
                None => open.await,
            }
        })
    }
}

impl Dial {
    async fn open(&self, uri: Uri) -> Result<Stream, DialError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(DialError::Uri(
                    "the endpoint's scheme is neither http nor https",
                ));
            }
        };
        let host = uri
            .host()
            .ok_or(DialError::Uri("the endpoint has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if https {
            // Built once, at the first https connection, before any phase is timed.
            self.tls.connector();
        }

        let (addrs, dns) = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => (vec![SocketAddr::new(ip, port)], None),
            Err(_) => {
                let start = Instant::now();
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(DialError::Dns)?
                    .collect();
                if addrs.is_empty() {
                    return Err(DialError::NoAddress(host));
                }
                (addrs, Some(start.elapsed()))
            }
        };

        let start = Instant::now();
        let tcp = connect_any(&addrs, self.connect_timeout).await?;
        let connect = start.elapsed();
        let _ = tcp.set_nodelay(true);

        let (io, tls, not_after) = if https {
            let start = Instant::now();
            let (s, not_after) =
                self.tls
                    .handshake(&host, tcp)
                    .await
                    .map_err(|source| DialError::Tls {
                        host: host.clone(),
                        source,
                    })?;
            (Io::Tls(Box::new(s)), Some(start.elapsed()), not_after)
        } else {
            (Io::Plain(tcp), None, None)
        };
        Ok(Stream {
            io: TokioIo::new(io),
            established: Arc::new(Establishment {
                dns,
                connect,
                tls,
                ready: Instant::now(),
                not_after,
                claimed: AtomicBool::new(false),
            }),
        })
    }
}

/// The first of `addrs` that accepts, trying them in order, each but the last within an equal
/// share of what is left of `within` (so one address that drops SYNs does not use up the time
/// of the others, as hyper's connector does); the last failure if none accepts.
async fn connect_any(addrs: &[SocketAddr], within: Option<Duration>) -> io::Result<TcpStream> {
    let deadline = within.map(|w| Instant::now() + w);
    let mut last = None;
    for (i, a) in addrs.iter().enumerate() {
        let attempt = TcpStream::connect(a);
        // The last address has what is left; the dial's own timeout ends it.
        let result = match deadline.filter(|_| i + 1 < addrs.len()) {
            Some(d) => {
                let share = d.saturating_duration_since(Instant::now()) / (addrs.len() - i) as u32;
                tokio::time::timeout(share, attempt)
                    .await
                    .unwrap_or_else(|_| {
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("{a} did not answer within {share:?}"),
                        ))
                    })
            }
            None => attempt.await,
        };
        match result {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no address to connect to")))
}

/// The socket under a connection: plain TCP, or TLS over it.
pub enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection as hyper's pool holds it: the socket and what opening it took.
pub struct Stream {
    io: TokioIo<Io>,
    established: Arc<Establishment>,
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new().extra(self.established.clone())
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Stream {
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

    /// A loopback listener whose accept queue is full (backlog 0 and one connection waiting):
    /// Linux drops the SYNs that come to it.
    async fn full_listener() -> (tokio::net::TcpListener, TcpStream, SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let blocker = TcpStream::connect(addr).await.unwrap();
        (listener, blocker, addr)
    }

    #[tokio::test]
    async fn an_address_that_drops_syns_leaves_time_for_the_next() {
        let (_full, _blocker, dropping) = full_listener().await;
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = open.local_addr().unwrap();
        let start = Instant::now();
        let s = connect_any(&[dropping, good], Some(Duration::from_secs(4)))
            .await
            .expect("the second address accepts");
        assert_eq!(s.peer_addr().unwrap(), good);
        // The first had half of the 4 s: the SYN retransmission (1 s) came back to a full
        // queue again, so it ran out at 2 s and the second connected at once.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(4),
            "{took:?}"
        );
    }
}
