//! An S3 server on 127.0.0.1 for `demo` and the tests: s3s speaking the S3 protocol over a real
//! TCP listener, s3s-fs storing objects in a temporary folder, and a fault layer.
//!
//! It signs like S3 (SigV4 with [`ACCESS_KEY`]/[`SECRET_KEY`]) and answers with
//! `x-amz-request-id` and `x-amz-id-2`, so the daemon's request-ID reporting works against it.

mod access;
mod answers;
mod checksums;
mod control;
pub mod faults;
pub mod hostile;
mod profiles;
pub mod queue;
pub mod replication;
pub mod store;
mod uploads;
mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wire::{classify, error_in_200, queue_answer};

pub use access::{Answered, Timings};
pub use control::{FaultScope, demo_router};
pub use faults::{BucketProfile, FaultConfig, Faults, HttpFault, InjectedError, Op, Profiles};
pub use replication::{Lag, Replicator, Rule};
pub use store::{Access, AccessLog};

/// Access key of the embedded server.
pub const ACCESS_KEY: &str = "s3canary-embedded";
/// Secret key of the embedded server (not a secret: the server only listens on loopback).
pub const SECRET_KEY: &str = "s3canary-embedded-secret";

/// A running embedded S3 server. Stops and deletes its data when dropped.
pub struct EmbeddedS3 {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub addr: SocketAddr,
    pub faults: Arc<Faults>,
    /// Event notifications and the queues they go to (SQS requests on the same port).
    pub queues: Arc<queue::Queues>,
    /// Buckets whose objects anyone may GET or HEAD without signing (a CDN's origin).
    public: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    pub log: Arc<AccessLog>,
    pub replication: Arc<Replicator>,
    /// How long the server took over each request.
    pub timings: Arc<Timings>,
    /// The `x-amz-request-id` of every answer, in order.
    pub answered: Arc<Answered>,
    root: PathBuf,
    shutdown: CancellationToken,
}

/// A checked target named `name` on `bucket` at `endpoint` (path-style, us-east-1), with
/// `extra` TOML lines of its `[[target]]` table appended: how tests and the benchmark point a
/// target at a server on loopback.
pub fn target_at(endpoint: &str, name: &str, bucket: &str, extra: &str) -> crate::config::Target {
    let text = format!(
        "[[target]]\nname = \"{name}\"\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\n\
         endpoint = \"{endpoint}\"\npath_style = true\n{extra}\n"
    );
    crate::config::parse(&text, std::path::Path::new("embedded.toml"))
        .expect("a target made for a loopback server is valid")
        .targets
        .remove(0)
}

impl EmbeddedS3 {
    /// Starts a server on a free loopback port with `buckets` created and empty.
    pub async fn start(buckets: &[&str]) -> std::io::Result<EmbeddedS3> {
        Self::start_on("127.0.0.1:0".parse().unwrap(), buckets).await
    }

    /// Starts a server on `addr`.
    pub async fn start_on(addr: SocketAddr, buckets: &[&str]) -> std::io::Result<EmbeddedS3> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let root = std::env::temp_dir().join(format!(
            "s3canary-embedded-{}-{}-{:08x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&root)?;
        for b in buckets {
            std::fs::create_dir_all(root.join(b))?;
        }
        let fs =
            s3s_fs::FileSystem::new(&root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let faults = Arc::new(Faults::default());
        let public: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Arc::default();
        let log = Arc::new(AccessLog::default());
        let replication = Arc::new(Replicator::default());
        let queues = Arc::new(queue::Queues::default());
        let store = store::Store::new(
            fs,
            root.clone(),
            faults.clone(),
            log.clone(),
            replication.clone(),
            queues.clone(),
        );
        let service = {
            let mut b = S3ServiceBuilder::new(store);
            b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.set_access(PublicReads(public.clone()));
            // The fault layer decides when a request's time is too far off (the clock-skew
            // profile, with S3's time in `Date`); s3s's own 15-minute check would refuse the
            // SDK's retries, which sign with the time the fault's `Date` taught them.
            let mut config = s3s::config::S3Config::default();
            config.presigned_url_max_skew_time_secs = 2 * 3600;
            b.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
                config,
            ))));
            b.build()
        };

        let faults_for_http = faults.clone();
        let queues_for_http = queues.clone();
        let timings = Arc::new(Timings::default());
        let timings_for_http = timings.clone();
        let answered = Arc::new(Answered::default());
        let answered_for_http = answered.clone();
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move {
            let server = ConnBuilder::new(TokioExecutor::new());
            let graceful = hyper_util::server::graceful::GracefulShutdown::new();
            let seq = Arc::new(AtomicU64::new(1));
            loop {
                let socket = tokio::select! {
                    _ = token.cancelled() => break,
                    r = listener.accept() => match r {
                        Ok((s, _)) => {
                            // Without this, Nagle's algorithm and delayed ACKs add 40 ms to
                            // answers written in two parts, and every latency figure with them.
                            let _ = s.set_nodelay(true);
                            s
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "embedded S3: accept failed");
                            continue;
                        }
                    },
                };
                let service = service.clone();
                let seq = seq.clone();
                let faults = faults_for_http.clone();
                let timings = timings_for_http.clone();
                let answered = answered_for_http.clone();
                let queues = queues_for_http.clone();
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let service = service.clone();
                        let timings = timings.clone();
                        let answered = answered.clone();
                        let queues = queues.clone();
                        let sqs = req
                            .headers()
                            .get("x-amz-target")
                            .and_then(|v| v.to_str().ok())
                            .filter(|t| t.starts_with("AmazonSQS."))
                            .map(str::to_string);
                        let arrived = std::time::Instant::now();
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        let (bucket, op) = classify(&req);
                        let fault = faults.for_bucket(&bucket).http_fault_for(op);
                        async move {
                            if let Some(target) = sqs {
                                // Boxed: the queue's long poll is a large future, and a
                                // connection's future is polled on a worker's stack.
                                return Ok(Box::pin(queue_answer(&queues, &target, req)).await);
                            }
                            if fault == Some(HttpFault::Reset) {
                                // An error from the service makes hyper drop the connection unanswered.
                                return Err(s3s::HttpError::new(
                                    "connection reset by the fault layer".into(),
                                ));
                            }
                            if fault == Some(HttpFault::ErrorIn200) {
                                // Answered without calling the store: the request failed after
                                // the 200, so nothing it asked for happened.
                                return Ok(error_in_200(n));
                            }
                            let mut resp = hyper::service::Service::call(&service, req).await?;
                            match fault {
                                Some(HttpFault::GarbageXml) => {
                                    *resp.status_mut() = http::StatusCode::OK;
                                    resp.headers_mut().remove(http::header::CONTENT_LENGTH);
                                    *resp.body_mut() =
                                        s3s::Body::from("<<this is not XML>> \u{0}".to_string());
                                }
                                Some(HttpFault::HugeHeader) => {
                                    let v = "x".repeat(1 << 20);
                                    resp.headers_mut()
                                        .insert("x-amz-meta-huge", v.parse().unwrap());
                                }
                                Some(HttpFault::Truncate) => {
                                    // Half the body, then the stream fails: hyper aborts the
                                    // connection mid-body, as a dying proxy does.
                                    let body = std::mem::take(resp.body_mut());
                                    let bytes = http_body_util::BodyExt::collect(body)
                                        .await
                                        .map(|c| c.to_bytes())
                                        .unwrap_or_default();
                                    let half = bytes.slice(..bytes.len() / 2);
                                    resp.headers_mut().remove(http::header::CONTENT_LENGTH);
                                    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
                                        Ok(half),
                                        Err(std::io::Error::other("truncated by the fault layer")),
                                    ];
                                    *resp.body_mut() =
                                        s3s::Body::from(s3s::dto::StreamingBlob::wrap(
                                            futures::stream::iter(chunks),
                                        ));
                                }
                                _ => {}
                            }
                            timings.push(op, arrived.elapsed());
                            // S3 answers every request with these two IDs; AWS support asks for them.
                            let h = resp.headers_mut();
                            let id = format!("{n:016X}");
                            h.insert("x-amz-request-id", id.parse().unwrap());
                            answered.push(id);
                            h.insert(
                                "x-amz-id-2",
                                format!("s3canary-embedded/{n:x}/{:08x}", rand::random::<u32>())
                                    .parse()
                                    .unwrap(),
                            );
                            Ok::<_, s3s::HttpError>(resp)
                        }
                    });
                let conn = server.serve_connection(TokioIo::new(socket), svc);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            // Hung requests (a fault) would hold a graceful shutdown forever: bound it.
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(1), graceful.shutdown()).await;
        });
        Ok(EmbeddedS3 {
            endpoint: format!("http://{addr}"),
            addr,
            faults,
            queues,
            public,
            log,
            replication,
            timings,
            answered,
            root,
            shutdown,
        })
    }

    /// Lets anyone GET and HEAD the objects of `bucket` without signing, as a bucket policy
    /// for a CDN's origin does (the cdn probe's tests put a caching proxy in front).
    pub fn public_read(&self, bucket: &str) {
        self.public.lock().unwrap().insert(bucket.to_string());
    }

    /// Credentials the server accepts.
    pub fn credentials() -> aws_sdk_s3::config::Credentials {
        aws_sdk_s3::config::Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            None,
            None,
            "s3canary-embedded",
        )
    }

    /// A client factory whose clients sign with [`EmbeddedS3::credentials`] instead of the
    /// standard credential chain.
    pub fn client_factory() -> crate::s3::ClientFactory {
        crate::s3::ClientFactory::with_credentials(
            aws_sdk_s3::config::SharedCredentialsProvider::new(Self::credentials()),
        )
    }

    /// A checked target named `name` on `bucket` of this server (path-style), with `extra`
    /// TOML lines of its `[[target]]` table appended.
    pub fn target(&self, name: &str, bucket: &str, extra: &str) -> crate::config::Target {
        target_at(&self.endpoint, name, bucket, extra)
    }

    /// A server with buckets `src{i}` and `dst{i}` for each of `lags`, each pair replicating
    /// keys under `s3canary/replication/` after that fixed lag (in seconds).
    pub async fn with_lagged_pairs(lags: &[f64]) -> std::io::Result<EmbeddedS3> {
        let names: Vec<String> = (0..lags.len())
            .flat_map(|i| [format!("src{i}"), format!("dst{i}")])
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let s3 = Self::start(&refs).await?;
        for (i, lag) in lags.iter().enumerate() {
            s3.replication.set_rule(Rule::new(
                &format!("src{i}"),
                &format!("dst{i}"),
                "s3canary/replication/",
                Lag::Fixed(std::time::Duration::from_secs_f64(*lag)),
            ));
        }
        Ok(s3)
    }

    /// A monitor of the replication pair `name` from bucket `src` to `dst` of this server (one
    /// target each, named after its bucket), reporting to `sink`.
    pub async fn replication_monitor(
        &self,
        name: &str,
        (src, dst): (&str, &str),
        (interval, timeout): (std::time::Duration, std::time::Duration),
        sink: Arc<dyn crate::report::Sink>,
    ) -> Arc<crate::replication::Monitor> {
        let (st, dt) = (self.target(src, src, ""), self.target(dst, dst, ""));
        let factory = Self::client_factory();
        let sb = factory.bucket(&st, sink.clone()).await;
        let db = factory.bucket(&dt, sink.clone()).await;
        let cfg = crate::config::Replication {
            name: name.into(),
            source: st,
            destination: dt,
            interval,
            timeout,
        };
        crate::replication::Monitor::new(cfg, sb, db, sink)
    }

    /// The folder holding the objects.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Keys currently stored in `bucket` (read from disk, bypassing faults and the log).
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return;
            };
            for e in rd.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with(".") {
                    continue;
                }
                if p.is_dir() {
                    walk(&p, base, out);
                } else if let Ok(rel) = p.strip_prefix(base) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let base = self.root.join(bucket);
        let mut out = Vec::new();
        walk(&base, &base, &mut out);
        out.sort();
        out
    }

    /// Stops accepting connections.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

/// The bucket and operation of a path-style request, as the fault layer selects them.
/// Access control: signed requests as usual; unsigned GetObject and HeadObject on a public
/// bucket's objects.
struct PublicReads(Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

#[async_trait::async_trait]
impl s3s::access::S3Access for PublicReads {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        let public = match cx.s3_path() {
            s3s::path::S3Path::Object { bucket, .. } => self.0.lock().unwrap().contains(&**bucket),
            _ => false,
        };
        let read = matches!(cx.s3_op().name(), "GetObject" | "HeadObject");
        if public && read {
            Ok(())
        } else {
            Err(s3s::s3_error!(AccessDenied, "Signature is required"))
        }
    }
}

impl Drop for EmbeddedS3 {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
