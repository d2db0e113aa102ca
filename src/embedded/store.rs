//! The embedded server's S3 implementation: s3s-fs for storage, wrapped to make conditional
//! writes atomic per key, to log every object access, and to inject faults.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use s3s_fs::FileSystem;
use tokio::time::Instant;

pub use super::access::{Access, AccessLog};
use super::checksums::{self, has_trailer, trailers_refused, wrong};
use super::faults::{FaultConfig, Faults, Op};
use super::replication::Replicator;

/// What the fault layer remembers of a key to serve stale views of it.
#[derive(Debug, Clone)]
struct History {
    first_write: Instant,
    last_write: Instant,
    body: Bytes,
    /// The version before the last overwrite.
    previous: Option<Bytes>,
    deleted_at: Option<Instant>,
}

/// How long histories are kept: longer than any stale window a test sets.
const HISTORY_TTL: Duration = Duration::from_secs(600);

/// s3s-fs plus atomic conditional writes, an access log and faults.
pub struct Store {
    pub(super) fs: FileSystem,
    pub(super) root: std::path::PathBuf,
    faults: Arc<Faults>,
    log: Arc<AccessLog>,
    pub(super) replication: Arc<Replicator>,
    /// Event notifications of acknowledged changes.
    pub(super) queues: Arc<super::queue::Queues>,
    /// Striped locks: writes to one key are serialised, so a conditional check and its write
    /// are atomic (s3s-fs checks and writes in two steps).
    locks: Vec<tokio::sync::Mutex<()>>,
    history: Mutex<HashMap<(String, String), History>>,
    /// Multipart uploads in progress (s3s-fs does not list them): bucket, key, id, initiated.
    pub(super) uploads: Mutex<Vec<super::uploads::Upload>>,
}

impl Store {
    pub fn new(
        fs: FileSystem,
        root: std::path::PathBuf,
        faults: Arc<Faults>,
        log: Arc<AccessLog>,
        replication: Arc<Replicator>,
        queues: Arc<super::queue::Queues>,
    ) -> Self {
        Store {
            fs,
            root,
            faults,
            log,
            replication,
            queues,
            locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            history: Mutex::new(HashMap::new()),
            uploads: Mutex::new(Vec::new()),
        }
    }

    /// Forgets what the fault layer remembers of a key (a new object replaced it).
    pub(super) fn forget(&self, bucket: &str, key: &str) {
        self.history
            .lock()
            .unwrap()
            .remove(&(bucket.to_string(), key.to_string()));
    }

    pub(super) fn lock_for(&self, bucket: &str, key: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (bucket, key).hash(&mut h);
        &self.locks[(h.finish() % self.locks.len() as u64) as usize]
    }

    /// Logs the access, then applies latency, hangs and injected errors.
    pub(super) async fn enter(&self, op: Op, bucket: &str, key: &str) -> S3Result<FaultConfig> {
        self.log.push(op, bucket, key);
        let f = self.faults.take_for(bucket);
        let delay = f.delay(op);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if f.hang.contains(&op) {
            std::future::pending::<()>().await;
        }
        // s3s-fs creates missing bucket folders on write; S3 answers NoSuchBucket.
        if !self.root.join(bucket).is_dir() {
            return Err(S3Error::with_message(
                S3ErrorCode::NoSuchBucket,
                "The specified bucket does not exist",
            ));
        }
        if let Some(e) = f.error_for(op) {
            let code =
                S3ErrorCode::from_bytes(e.code.as_bytes()).unwrap_or(S3ErrorCode::InternalError);
            let message = e
                .message
                .clone()
                .unwrap_or_else(|| "injected by the s3canary fault layer".into());
            let mut err = S3Error::with_message(code, message);
            if let Some(status) = e.status.and_then(|s| http::StatusCode::from_u16(s).ok()) {
                err.set_status_code(status);
            }
            let headers = super::answers::headers(e);
            if !headers.is_empty() {
                err.set_headers(headers);
            }
            return Err(err);
        }
        Ok(f)
    }

    fn history(&self, bucket: &str, key: &str) -> Option<History> {
        self.history
            .lock()
            .unwrap()
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
    }

    /// What a read should see now, if a fault makes it differ from the stored object:
    /// `Some(None)` for "absent", `Some(Some(bytes))` for an older version.
    fn stale_view(&self, f: &FaultConfig, bucket: &str, key: &str) -> Option<Option<Bytes>> {
        let h = self.history(bucket, key)?;
        let now = Instant::now();
        if let Some(d) = h.deleted_at {
            return (now < d + f.read_after_delete).then(|| Some(h.body.clone()));
        }
        if h.previous.is_none() && now < h.first_write + f.stale_after_write {
            return Some(None);
        }
        if let Some(prev) = &h.previous
            && now < h.last_write + f.stale_after_overwrite
        {
            return Some(Some(prev.clone()));
        }
        None
    }
}

fn etag_of(b: &[u8]) -> ETag {
    ETag::Strong(crate::canary::md5_hex(b))
}

fn not_found() -> S3Error {
    S3Error::with_message(S3ErrorCode::NoSuchKey, "The specified key does not exist.")
}

async fn collect(body: Option<StreamingBlob>) -> S3Result<Bytes> {
    let mut out = BytesMut::new();
    if let Some(mut b) = body {
        while let Some(chunk) = b.next().await {
            let chunk = chunk.map_err(|e| {
                S3Error::with_message(S3ErrorCode::IncompleteBody, format!("body: {e}"))
            })?;
            out.extend_from_slice(&chunk);
        }
    }
    Ok(out.freeze())
}

/// Operations the fault layer leaves alone, handed to the file store as they are (in the form
/// `#[async_trait]` gives the trait's methods, which it does not give to a macro's).
macro_rules! pass_through {
    ($($name:ident($input:ident) -> $output:ident;)*) => {$(
        fn $name<'life0, 'async_trait>(
            &'life0 self,
            req: S3Request<$input>,
        ) -> Pin<Box<dyn Future<Output = S3Result<S3Response<$output>>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            self.fs.$name(req)
        }
    )*};
}

#[async_trait::async_trait]
impl S3 for Store {
    pass_through! {
        create_bucket(CreateBucketInput) -> CreateBucketOutput;
        head_bucket(HeadBucketInput) -> HeadBucketOutput;
        list_buckets(ListBucketsInput) -> ListBucketsOutput;
        get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
    }

    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let f = self.enter(Op::PutObject, &bucket, &key).await?;
        if f.refuse_trailers && has_trailer(&req.headers) {
            return Err(trailers_refused());
        }
        if f.ignore_conditional {
            req.input.if_match = None;
            req.input.if_none_match = None;
        }
        let body = collect(req.input.body.take()).await?;
        let body = checksums::upload(&f, &mut req, body);
        let _guard = self.lock_for(&bucket, &key).lock().await;
        let out = match self.fs.put_object(req).await {
            Ok(out) => out,
            Err(e) if *e.code() == S3ErrorCode::PreconditionFailed => {
                let mut e = e;
                match f.conditional_status {
                    Some(409) => {
                        e = S3Error::with_message(
                            S3ErrorCode::Custom("ConditionalRequestConflict".into()),
                            "conditional request conflict",
                        );
                        e.set_status_code(http::StatusCode::CONFLICT);
                    }
                    Some(304) => {
                        e = S3Error::with_message(
                            S3ErrorCode::Custom("NotModified".into()),
                            "not modified",
                        );
                        e.set_status_code(http::StatusCode::NOT_MODIFIED);
                    }
                    _ => {}
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        self.replication.on_write(&self.root, &bucket, &key);
        self.queues
            .on_change(&bucket, &key, crate::s3::Change::Created, f.drops_event());
        let now = Instant::now();
        let mut hist = self.history.lock().unwrap();
        hist.retain(|_, h| now.duration_since(h.last_write) < HISTORY_TTL);
        let k = (bucket, key);
        let next = match hist.get(&k) {
            Some(h) if h.deleted_at.is_none() => History {
                first_write: h.first_write,
                last_write: now,
                previous: Some(h.body.clone()),
                body,
                deleted_at: None,
            },
            _ => History {
                first_write: now,
                last_write: now,
                previous: None,
                body,
                deleted_at: None,
            },
        };
        hist.insert(k, next);
        Ok(out)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let f = self.enter(Op::GetObject, &bucket, &key).await?;
        match self.stale_view(&f, &bucket, &key) {
            None if f.wrong_checksum => {
                let mut out = self.fs.get_object(req).await?;
                let o = &mut out.output;
                for v in [
                    &mut o.checksum_crc32,
                    &mut o.checksum_crc32c,
                    &mut o.checksum_crc64nvme,
                    &mut o.checksum_sha1,
                    &mut o.checksum_sha256,
                ] {
                    wrong(v);
                }
                Ok(out)
            }
            None => self.fs.get_object(req).await,
            Some(None) => Err(not_found()),
            Some(Some(old)) => Ok(S3Response::new(GetObjectOutput {
                content_length: Some(old.len() as i64),
                e_tag: Some(etag_of(&old)),
                body: Some(StreamingBlob::from(s3s::Body::from(old))),
                ..Default::default()
            })),
        }
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let f = self.enter(Op::HeadObject, &bucket, &key).await?;
        match self.stale_view(&f, &bucket, &key) {
            None => {
                let mut out = self.fs.head_object(req).await?;
                out.output.replication_status = self
                    .replication
                    .status(&bucket, &key)
                    .map(ReplicationStatus::from_static);
                if f.wrong_checksum {
                    let o = &mut out.output;
                    for v in [
                        &mut o.checksum_crc32,
                        &mut o.checksum_crc32c,
                        &mut o.checksum_crc64nvme,
                        &mut o.checksum_sha1,
                        &mut o.checksum_sha256,
                    ] {
                        wrong(v);
                    }
                }
                Ok(out)
            }
            Some(None) => Err(not_found()),
            Some(Some(old)) => Ok(S3Response::new(HeadObjectOutput {
                content_length: Some(old.len() as i64),
                e_tag: Some(etag_of(&old)),
                ..Default::default()
            })),
        }
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let f = self.enter(Op::DeleteObject, &bucket, &key).await?;
        let _guard = self.lock_for(&bucket, &key).lock().await;
        let out = match self.fs.delete_object(req).await {
            Ok(out) => out,
            // S3 answers 204 for a key that does not exist; s3s-fs answers NoSuchKey.
            Err(e) if *e.code() == S3ErrorCode::NoSuchKey => {
                S3Response::new(DeleteObjectOutput::default())
            }
            Err(e) => return Err(e),
        };
        self.replication.forget(&bucket, &key);
        self.queues
            .on_change(&bucket, &key, crate::s3::Change::Removed, f.drops_event());
        if let Some(h) = self.history.lock().unwrap().get_mut(&(bucket, key))
            && h.deleted_at.is_none()
        {
            h.deleted_at = Some(Instant::now());
        }
        Ok(out)
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let bucket = req.input.bucket.clone();
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let f = self.enter(Op::ListObjectsV2, &bucket, &prefix).await?;
        let mut out = match self.fs.list_objects_v2(req).await {
            Ok(out) => out,
            // s3s-fs answers NoSuchKey when the prefix names no directory; S3 lists nothing.
            Err(e) if *e.code() == S3ErrorCode::NoSuchKey => S3Response::new(ListObjectsV2Output {
                name: Some(bucket.clone()),
                prefix: Some(prefix.clone()),
                key_count: Some(0),
                ..Default::default()
            }),
            Err(e) => return Err(e),
        };
        if f.list_lag.is_zero() && f.read_after_delete.is_zero() {
            return Ok(out);
        }
        let now = Instant::now();
        let hist = self.history.lock().unwrap();
        let contents = out.output.contents.get_or_insert_with(Vec::new);
        contents.retain(|o| {
            let Some(k) = &o.key else { return true };
            match hist.get(&(bucket.clone(), k.clone())) {
                Some(h) => now >= h.first_write + f.list_lag,
                None => true,
            }
        });
        for ((b, k), h) in hist.iter() {
            if *b == bucket
                && k.starts_with(&prefix)
                && h.deleted_at.is_some_and(|d| now < d + f.read_after_delete)
                && !contents.iter().any(|o| o.key.as_deref() == Some(k))
            {
                contents.push(Object {
                    key: Some(k.clone()),
                    e_tag: Some(etag_of(&h.body)),
                    size: Some(h.body.len() as i64),
                    ..Default::default()
                });
            }
        }
        out.output.key_count = Some(contents.len() as i32);
        Ok(out)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.create_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.part(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.complete_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.abort_upload(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.list_uploads(req).await
    }
}
