//! S3 access for probes: the few operations they need on one bucket, each returning either
//! the answer or a classified [`Failure`] that names the operation.
//!
//! Clients come from [`client::ClientFactory`]; an interceptor ([`recorder`]) reports every
//! attempt's latency and error code, so a retried request shows up as the slow or failed
//! attempts it really was; [`error`] maps SDK errors onto the bounded reasons.

pub mod checksum;
pub mod client;
pub mod connect;
pub mod credentials;
pub mod error;
pub mod explain;
pub mod limit;
pub mod multipart;
mod recorder;
pub mod words;

/// `$req` with the server-side encryption `$sse` (`&Option<Sse>`): the PutObject and
/// CreateMultipartUpload builders have the same two setters and no trait in common.
macro_rules! with_sse {
    ($req:expr, $sse:expr) => {{
        use aws_sdk_s3::types::ServerSideEncryption;
        let req = $req;
        match $sse {
            None => req,
            Some($crate::config::Sse::Aes256) => {
                req.server_side_encryption(ServerSideEncryption::Aes256)
            }
            Some($crate::config::Sse::Kms { key_id }) => {
                let r = req.server_side_encryption(ServerSideEncryption::AwsKms);
                match key_id {
                    Some(k) => r.ssekms_key_id(k),
                    None => r,
                }
            }
        }
    }};
}
pub(crate) use with_sse;

use std::sync::Arc;

use aws_sdk_s3::operation::{RequestId, RequestIdExt};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

pub use client::{ClientFactory, MAX_ATTEMPTS};
use recorder::{RECORDING, REFUSAL_EXPECTED, Recording, SENT};

use crate::config::Sse;
use crate::report::{Failure, MAX_TOKEN, Reason, RequestIds, bounded_text};

/// The request IDs of a successful answer (kept so a wrong answer can be reported to AWS).
fn ids_of<T: RequestId + RequestIdExt>(o: &T) -> RequestIds {
    RequestIds {
        request_id: o.request_id().map(str::to_string),
        extended_request_id: o.extended_request_id().map(str::to_string),
    }
}

/// A write condition for PutObject.
#[derive(Debug, Clone)]
pub enum Condition {
    None,
    /// `If-None-Match: *`: create only.
    IfNoneMatchAny,
    /// `If-Match: <etag>`: replace only this version.
    IfMatch(String),
}

/// An acknowledged write.
#[derive(Debug, Clone)]
pub struct Written {
    pub etag: Option<String>,
    /// The version S3 created, on a versioned bucket.
    pub version_id: Option<String>,
    pub ids: RequestIds,
}

/// An acknowledged delete.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// On a versioned bucket, the delete marker S3 created.
    pub marker_version_id: Option<String>,
    pub ids: RequestIds,
}

/// The SDK's own words when a body read with checksum mode on does not match the checksum S3
/// sent with it.
fn checksum_refused(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use aws_smithy_checksums::body::validate::Error;
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(Error::ChecksumMismatch { expected, actual }) = e.downcast_ref::<Error>() {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD;
            return Some(format!(
                "the body does not match the checksum S3 sent with it ({}), its own is {}",
                b64.encode(expected),
                b64.encode(actual)
            ));
        }
        next = e.source();
    }
    None
}

/// A version id S3 gave, if it names a version ("null" is the version of an unversioned write).
fn real_version(v: Option<&str>) -> Option<String> {
    v.filter(|v| !v.is_empty() && *v != "null")
        .map(|v| bounded_text(v, MAX_TOKEN))
}

/// An object read back.
#[derive(Debug, Clone)]
pub struct Read {
    pub body: Bytes,
    pub etag: Option<String>,
    pub ids: RequestIds,
}

/// HeadObject's answer.
#[derive(Debug, Clone)]
pub struct Head {
    pub etag: Option<String>,
    pub replication_status: Option<String>,
    pub ids: RequestIds,
}

/// What a bucket change (a write or a delete) may be notified as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    Created,
    Removed,
}

/// How S3 answered a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: it happened.
    Done,
    /// Refused (a 4xx other than 408/429): nothing changed.
    Refused,
    /// No answer, or a 5xx: it may have happened.
    Unknown,
}

/// Told of every change a [`Bucket`] makes under the target's canary prefix: before the
/// request is sent (a notification can arrive before the answer) and once it is answered.
pub trait ChangeObserver: Send + Sync + std::fmt::Debug {
    /// A change of `key` is about to be sent; the returned token names it in `answered`.
    fn sending(&self, key: &str, change: Change) -> u64;
    /// The change named by `token` was answered.
    fn answered(&self, token: u64, outcome: Outcome);
}

/// How a failed change was answered.
fn outcome_of(f: &Failure) -> Outcome {
    if f.changed_nothing() {
        Outcome::Refused
    } else {
        Outcome::Unknown
    }
}

/// One bucket of one target: the operations probes use, errors already classified.
///
/// The client is shared with every target that has the same region, endpoint, addressing
/// style, role and timeout; each request is attributed to this target's series through
/// the recorder's task-local recording.
#[derive(Clone, Debug)]
pub struct Bucket {
    pub client: aws_sdk_s3::Client,
    pub name: String,
    pub sse: Option<Sse>,
    /// Most bytes of a GetObject body read: the canary's size and a margin.
    pub max_body: usize,
    pub(crate) recording: Arc<Recording>,
    /// Where the requests go, for the words of failures without an answer.
    pub(crate) peer: Arc<words::Peer>,
    /// Told of every write and delete (the events probe), when set.
    pub changes: Option<Arc<dyn ChangeObserver>>,
    /// Checksummed uploads started so far: the checksum probe's place in its rotation.
    pub(crate) turns: Arc<std::sync::atomic::AtomicU64>,
}

impl Bucket {
    /// The checksum probe's next turn (0, 1, 2, ...): which algorithm and form it sends.
    pub fn next_turn(&self) -> u64 {
        self.turns
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs one request with its attempts recorded under this target's labels.
    ///
    /// The request is boxed: the SDK's request futures are 7-10 KiB, and kept inline they
    /// made every future around them as large (a PutObject through [`Bucket::put`] was 38 KiB),
    /// each layer copying them as it moved them. One allocation per request costs less.
    ///
    /// Also answers whether any attempt may have reached the store ([`recorder::SENT`]): a
    /// request whose every attempt failed to connect (or to be signed) changed nothing.
    fn recorded<F: std::future::Future>(
        &self,
        request: F,
    ) -> impl std::future::Future<Output = (F::Output, bool)> {
        let sent = Arc::new(recorder::Sent::default());
        let request = RECORDING.scope(self.recording.clone(), Box::pin(request));
        let request = SENT.scope(sent.clone(), request);
        async move {
            let out = request.await;
            (out, sent.may_have_reached())
        }
    }

    /// Runs `change` of `key`, telling the change observer before and after.
    async fn changing<T, F>(&self, key: &str, change: Change, request: F) -> Result<T, Failure>
    where
        F: std::future::Future<Output = Result<T, Failure>>,
    {
        let Some(observer) = &self.changes else {
            return request.await;
        };
        let token = observer.sending(key, change);
        let r = request.await;
        observer.answered(token, r.as_ref().map_or_else(outcome_of, |_| Outcome::Done));
        r
    }

    /// PutObject under a condition that S3 must refuse: the refusal is the expected answer and is
    /// not counted as a request error (any other answer is).
    pub async fn put_expecting_refusal(
        &self,
        key: &str,
        body: Bytes,
        cond: &Condition,
    ) -> Result<Written, Failure> {
        REFUSAL_EXPECTED
            .scope(error::Refusal::Precondition, self.put(key, body, cond))
            .await
    }

    /// PutObject of `body` at `key`, honouring the target's SSE setting and `cond`.
    pub async fn put(&self, key: &str, body: Bytes, cond: &Condition) -> Result<Written, Failure> {
        self.changing(key, Change::Created, self.put_object(key, body, cond))
            .await
    }

    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        cond: &Condition,
    ) -> Result<Written, Failure> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .content_type("application/octet-stream")
            .body(ByteStream::from(body));
        req = match cond {
            Condition::None => req,
            Condition::IfNoneMatchAny => req.if_none_match("*"),
            Condition::IfMatch(etag) => req.if_match(etag),
        };
        let req = self.with_sse(req);
        let (answer, sent) = self.recorded(req.send()).await;
        match answer {
            Ok(o) => Ok(Written {
                etag: o.e_tag().map(str::to_string),
                version_id: real_version(o.version_id()),
                ids: ids_of(&o),
            }),
            Err(e) => Err(error::failure("PutObject", &e, &self.peer, sent)),
        }
    }

    /// `req` with the target's server-side encryption.
    fn with_sse(
        &self,
        req: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        with_sse!(req, &self.sse)
    }

    /// Reads a GetObject body of at most the canary's size and [`limit::GET_MARGIN`]; a
    /// longer one is a wrong answer, and reading stops there whatever `Content-Length` said.
    async fn read_body(&self, body: &mut ByteStream, ids: &RequestIds) -> Result<Bytes, Failure> {
        self.read_at_most(body, ids, self.max_body).await
    }

    /// Reads a GetObject body of at most `max` bytes (a longer one is a wrong answer).
    async fn read_at_most(
        &self,
        body: &mut ByteStream,
        ids: &RequestIds,
        max: usize,
    ) -> Result<Bytes, Failure> {
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                if let Some(why) = checksum_refused(&e) {
                    return Failure::new(
                        Reason::ContentMismatch,
                        Some("GetObject"),
                        None,
                        None,
                        &why,
                        ids,
                    );
                }
                let why = format!(
                    "reading the body failed: {}",
                    words::transport(Some(&e), &self.peer.authority)
                );
                Failure::new(Reason::Connection, Some("GetObject"), None, None, &why, ids)
            })?;
            if out.len() + chunk.len() > max {
                let why = format!("the body is longer than {max} bytes; reading stopped there");
                let f = Failure::new(
                    Reason::ContentMismatch,
                    Some("GetObject"),
                    None,
                    None,
                    &why,
                    ids,
                );
                return Err(f);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// GetObject; `Ok(None)` when S3 answers 404.
    pub async fn get(&self, key: &str) -> Result<Option<Read>, Failure> {
        let req = self.client.get_object().bucket(&self.name).key(key);
        let (answer, sent) = self.recorded(req.send()).await;
        match answer {
            Ok(mut o) => {
                let ids = ids_of(&o);
                let etag = o.e_tag().map(str::to_string);
                let body = self.read_body(&mut o.body, &ids).await?;
                Ok(Some(Read { body, etag, ids }))
            }
            Err(e) if error::is_not_found(&e) => Ok(None),
            Err(e) => Err(error::failure("GetObject", &e, &self.peer, sent)),
        }
    }

    /// HeadObject; `Ok(None)` when S3 answers 404.
    pub async fn head(&self, key: &str) -> Result<Option<Head>, Failure> {
        let req = self.client.head_object().bucket(&self.name).key(key);
        let (answer, sent) = self.recorded(req.send()).await;
        match answer {
            Ok(o) => Ok(Some(Head {
                etag: o.e_tag().map(str::to_string),
                replication_status: o.replication_status().map(|s| s.as_str().to_string()),
                ids: ids_of(&o),
            })),
            Err(e) if error::is_not_found(&e) => Ok(None),
            Err(e) => Err(error::failure("HeadObject", &e, &self.peer, sent)),
        }
    }

    /// ListObjectsV2 of one page under `prefix`; returns the keys and the request IDs.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
    ) -> Result<(Vec<String>, bool, RequestIds), Failure> {
        let mut req = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix);
        if let Some(s) = start_after {
            req = req.start_after(s);
        }
        let (answer, sent) = self.recorded(req.send()).await;
        match answer {
            Ok(o) => {
                let keys = o
                    .contents()
                    .iter()
                    .filter_map(|c| c.key().map(str::to_string))
                    .collect();
                Ok((keys, o.is_truncated().unwrap_or(false), ids_of(&o)))
            }
            Err(e) => Err(error::failure("ListObjectsV2", &e, &self.peer, sent)),
        }
    }

    /// DeleteObject (S3 answers 204 whether or not the key existed); on a versioned bucket it
    /// adds a delete marker and keeps the versions.
    pub async fn delete(&self, key: &str) -> Result<Deleted, Failure> {
        self.changing(key, Change::Removed, self.delete_object(key))
            .await
    }

    async fn delete_object(&self, key: &str) -> Result<Deleted, Failure> {
        let req = self.client.delete_object().bucket(&self.name).key(key);
        let (answer, sent) = self.recorded(req.send()).await;
        match answer {
            Ok(o) => Ok(Deleted {
                marker_version_id: if o.delete_marker() == Some(true) {
                    real_version(o.version_id())
                } else {
                    None
                },
                ids: ids_of(&o),
            }),
            Err(e) => Err(error::failure("DeleteObject", &e, &self.peer, sent)),
        }
    }

    /// DeleteObject of one version (or delete marker) of `key`: on a versioned bucket, the
    /// only delete that leaves nothing behind.
    pub async fn delete_version(&self, key: &str, version_id: &str) -> Result<RequestIds, Failure> {
        let request = self.delete_object_version(key, version_id);
        self.changing(key, Change::Removed, request).await
    }

    async fn delete_object_version(
        &self,
        key: &str,
        version_id: &str,
    ) -> Result<RequestIds, Failure> {
        let req = self
            .client
            .delete_object()
            .bucket(&self.name)
            .key(key)
            .version_id(version_id);
        let (answer, sent) = self.recorded(req.send()).await;
        match answer {
            Ok(o) => Ok(ids_of(&o)),
            Err(e) => Err(error::failure("DeleteObject", &e, &self.peer, sent)),
        }
    }
}
