//! The state one cycle's steps share, and the rules every step follows: requests go through the
//! cycle (which counts them), writes keep track of what may exist and must be cleaned up, and
//! a stale view is measured in one way ([`Cycle::stale_view`]).

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::canary::md5_hex;
use crate::config::Sse;
use crate::report::{Check, Failure, RequestIds, Violation};
use crate::s3::checksum::{Algorithm, ChecksumRead, Checksummed, Form};
use crate::s3::{Bucket, Condition, Deleted, Head, Read, Written};

/// How a read compares with what was written.
pub(crate) enum Seen {
    Current,
    /// 404, or an older version's bytes.
    Stale,
    /// Bytes of no version this cycle wrote, or the right bytes with a wrong ETag.
    Corrupt(String),
}

/// A version of the canary that S3 acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub body: Bytes,
    pub etag: Option<String>,
    pub acked_at: Instant,
}

/// What a consistent answer to a re-read is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Want {
    /// GetObject returns the current version (a failed GET is no answer).
    Current,
    /// HeadObject finds nothing (a failed HEAD counts as stale).
    Absent,
    /// ListObjectsV2 shows the key, or does not (a failed listing counts as stale).
    Listed(bool),
    /// A GET through the CDN returns the current version.
    Cdn,
}

/// State shared by the steps of one cycle. The bucket is private: every S3 request goes
/// through a method here, which counts it.
pub(crate) struct Cycle<'a> {
    bucket: &'a Bucket,
    pub key: String,
    size: usize,
    pub deadline: Instant,
    /// Acknowledged versions, oldest first.
    pub versions: Vec<Version>,
    /// Whether the canary may exist in the bucket (so cleanup must delete it).
    pub may_exist: bool,
    /// On a versioned bucket, every version and delete marker this cycle created, oldest
    /// first: cleanup deletes each by its id, so nothing is left behind.
    pub created: Vec<String>,
    pub violations: Vec<Violation>,
    /// The failure a step had established when the deadline cut it short.
    pub pending_failure: Option<Failure>,
    /// S3 requests sent (first attempts; the SDK's retries are the recorder's).
    requests: u32,
    /// The CDN's base URL, with the cdn probe.
    pub cdn: Option<String>,
    /// The checksum probe's algorithm and form this cycle, with the checksum probe.
    pub checksum: Option<(Algorithm, Form)>,
}

impl<'a> Cycle<'a> {
    /// A cycle on `bucket` for canary `key` of `size` bytes, its steps bounded by `deadline`.
    pub fn new(
        bucket: &'a Bucket,
        key: String,
        size: usize,
        deadline: Instant,
        cdn: Option<String>,
    ) -> Self {
        Cycle {
            bucket,
            key,
            size,
            deadline,
            versions: Vec::new(),
            may_exist: false,
            created: Vec::new(),
            violations: Vec::new(),
            pending_failure: None,
            requests: 0,
            cdn,
            checksum: None,
        }
    }

    /// S3 requests this cycle sent.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// Most bytes of a read the cycle accepts: the canary's size and a margin.
    pub fn max_read(&self) -> usize {
        self.size + crate::s3::limit::GET_MARGIN
    }

    /// Whether the bucket encrypts with KMS (whose ETags are not the body's MD5).
    pub fn kms(&self) -> bool {
        matches!(self.bucket.sse, Some(Sse::Kms { .. }))
    }

    /// A body that differs from every earlier version: a header naming key and version, then
    /// random bytes.
    pub fn new_body(&self) -> Bytes {
        let mut body = vec![0u8; self.size];
        rand::fill(&mut body[..]);
        // Printable, so a canary opened by hand reads as text: six random bits a byte, shown
        // as '0' to 'o' (a mask and an add the compiler vectorizes; a remainder into an
        // alphabet cost a division per byte, about 1% of a cycle's CPU).
        for b in body.iter_mut() {
            *b = b'0' + (*b & 63);
        }
        let header = format!("s3canary {} v{}\n", self.key, self.versions.len() + 1);
        let n = header.len().min(self.size.saturating_sub(16));
        body[..n].copy_from_slice(&header.as_bytes()[..n]);
        Bytes::from(body)
    }

    /// The version that should be visible now.
    pub fn current(&self) -> Option<&Version> {
        self.versions.last()
    }

    /// GetObject of the canary (None: 404).
    pub async fn get(&mut self) -> Result<Option<Read>, Failure> {
        self.requests += 1;
        self.bucket.get(&self.key).await
    }

    /// HeadObject of the canary (None: 404).
    pub async fn head(&mut self) -> Result<Option<Head>, Failure> {
        self.requests += 1;
        self.bucket.head(&self.key).await
    }

    /// DeleteObject of the canary: it no longer exists, and a delete marker it created is
    /// cleaned up with the cycle's versions.
    pub async fn delete(&mut self) -> Result<Deleted, Failure> {
        self.requests += 1;
        let deleted = self.bucket.delete(&self.key).await?;
        self.created.extend(deleted.marker_version_id.clone());
        self.may_exist = false;
        Ok(deleted)
    }

    /// ListObjectsV2 with the canary's key as prefix: whether the key is listed. Listing the
    /// full key costs one request and returns at most one entry, however many other objects the
    /// bucket holds.
    pub async fn list_shows_key(&mut self) -> Result<(bool, RequestIds), Failure> {
        self.requests += 1;
        let (keys, _, ids) = self.bucket.list(&self.key, None).await?;
        Ok((keys.contains(&self.key), ids))
    }

    /// PutObject of `body` under `cond`, where S3 must refuse it: a refusal is the expected
    /// answer, not a request error.
    pub async fn put_expecting_refusal(
        &mut self,
        body: Bytes,
        cond: &Condition,
    ) -> Result<Written, Failure> {
        self.requests += 1;
        self.bucket
            .put_expecting_refusal(&self.key, body, cond)
            .await
    }

    /// PutObject of a new body under `cond`; an acknowledged write becomes the current version.
    /// Returns S3's answer and the body sent.
    ///
    /// A write that timed out, lost its connection or got a 5xx may have landed, so the canary
    /// may exist from then on and cleanup deletes it. A write S3 refused
    /// ([`Failure::changed_nothing`]) wrote nothing: it changes nothing to clean up.
    pub async fn write(&mut self, cond: &Condition) -> Result<(Written, Bytes), Failure> {
        let body = self.new_body();
        let existed = self.may_exist;
        self.may_exist = true;
        self.requests += 1;
        match self.bucket.put(&self.key, body.clone(), cond).await {
            Ok(w) => {
                self.acknowledged(body.clone(), &w);
                Ok((w, body))
            }
            Err(f) => {
                if f.changed_nothing() {
                    self.may_exist = existed;
                }
                Err(f)
            }
        }
    }

    /// PutObject of a new body with `a`'s checksum sent in `form`; acknowledged, it becomes the
    /// current version (the same rules as [`Cycle::write`]).
    pub async fn write_checksummed(
        &mut self,
        a: Algorithm,
        form: Form,
    ) -> Result<(Checksummed, Bytes), Failure> {
        let body = self.new_body();
        let existed = self.may_exist;
        self.may_exist = true;
        self.requests += 1;
        match self
            .bucket
            .put_checksummed(&self.key, body.clone(), a, form)
            .await
        {
            Ok(w) => {
                self.acknowledged(body.clone(), &w.written);
                Ok((w, body))
            }
            Err(f) => {
                if f.changed_nothing() {
                    self.may_exist = existed;
                }
                Err(f)
            }
        }
    }

    /// PutObject of a new body with `wrong` as its `a` checksum, which S3 must refuse. Accepted,
    /// it is the current version (and cleanup deletes it as any other).
    pub async fn put_wrong_checksum(&mut self, a: Algorithm, wrong: &str) -> Result<(), Failure> {
        let body = self.new_body();
        self.requests += 1;
        let w = self
            .bucket
            .put_wrong_checksum(&self.key, body.clone(), a, wrong)
            .await?;
        self.may_exist = true;
        self.acknowledged(body, &w);
        Err(Failure::wrong_answer(
            crate::report::Reason::ChecksumIgnored,
            "PutObject",
            &w.ids,
            format!(
                "PutObject with a wrong {} checksum ({wrong}) was accepted: the store does not check the checksums clients send",
                a.name()
            ),
        ))
    }

    /// GetObject of the canary with checksum mode on (None: 404).
    pub async fn get_checksummed(&mut self, a: Algorithm) -> Result<Option<ChecksumRead>, Failure> {
        self.requests += 1;
        self.bucket.get_checksummed(&self.key, a).await
    }

    /// Deletes what the cycle left: every version it created by its id (on a versioned bucket a
    /// plain delete would only add a delete marker), and the key itself when it may exist on
    /// an unversioned bucket.
    pub async fn clean_up(&mut self) -> Result<(), Failure> {
        let versioned = !self.created.is_empty();
        while let Some(v) = self.created.last().cloned() {
            self.requests += 1;
            self.bucket.delete_version(&self.key, &v).await?;
            self.created.pop();
        }
        if self.may_exist && !versioned {
            self.requests += 1;
            self.bucket.delete(&self.key).await?;
        }
        self.may_exist = false;
        Ok(())
    }

    /// Records `body`, written with answer `w`, as the current version.
    pub fn acknowledged(&mut self, body: Bytes, w: &Written) {
        if let Some(v) = &w.version_id {
            self.created.push(v.clone());
        }
        self.versions.push(Version {
            body,
            etag: w.etag.clone(),
            acked_at: Instant::now(),
        });
    }

    /// How `read` (None: 404) compares with the versions this cycle wrote.
    pub fn judge(&self, read: Option<&Read>) -> Seen {
        let Some(cur) = self.current() else {
            return Seen::Corrupt("no acknowledged version to compare with".into());
        };
        let Some(r) = read else { return Seen::Stale };
        if r.body == cur.body {
            match (&r.etag, &cur.etag) {
                (Some(a), Some(b)) if a != b => {
                    Seen::Corrupt(format!("ETag {a} differs from the PUT's ETag {b}"))
                }
                _ => Seen::Current,
            }
        } else if self.versions.iter().rev().skip(1).any(|v| v.body == r.body) {
            Seen::Stale
        } else {
            Seen::Corrupt(format!(
                "{} bytes with MD5 {} match no version written (expected {} bytes, MD5 {})",
                r.body.len(),
                md5_hex(&r.body),
                cur.body.len(),
                md5_hex(&cur.body)
            ))
        }
    }

    /// Records that S3 accepted a conditional write of `check` it had to refuse.
    pub fn precondition_ignored(&mut self, check: Check) {
        self.violations.push(Violation {
            check,
            staleness: None,
            resolved: false,
        });
    }

    /// A stale view, the one way every step handles it: `failure` becomes what the step found
    /// (so a deadline that cuts the re-reads short still reports it, the step's first stale
    /// view winning), a violation of `check` is recorded from `since` (the acknowledgement),
    /// and the view is re-read until it is what `want` says or the deadline, to measure how
    /// long it lasted. Returns `failure`, for the step to answer.
    pub async fn stale_view(
        &mut self,
        failure: Failure,
        check: Check,
        since: Instant,
        want: Want,
    ) -> Failure {
        self.pending_failure.get_or_insert_with(|| failure.clone());
        self.violations.push(Violation {
            check,
            staleness: Some(since.elapsed()),
            resolved: false,
        });
        let i = self.violations.len() - 1;
        self.reread_until(i, since, want).await;
        failure
    }

    /// After violation `i`, re-reads until the answer is what `want` says or the deadline.
    /// Waits are short at first and coarser later.
    async fn reread_until(&mut self, i: usize, since: Instant, want: Want) {
        let mut attempt = 0u32;
        loop {
            let delay = Duration::from_millis(20)
                .saturating_mul(2u32.saturating_pow(attempt.min(5)))
                .min(Duration::from_millis(500));
            if Instant::now() + delay >= self.deadline {
                return;
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
            let Some(consistent) = self.reread(want).await else {
                continue;
            };
            let v = &mut self.violations[i];
            v.staleness = Some(since.elapsed());
            v.resolved = consistent;
            if consistent {
                return;
            }
        }
    }

    /// One re-read: `Some(true)` for a consistent answer, `Some(false)` for a stale one, `None`
    /// for no answer to judge (which leaves the measurement as it was).
    async fn reread(&mut self, want: Want) -> Option<bool> {
        match want {
            Want::Current => {
                let again = self.get().await.ok()?;
                Some(matches!(self.judge(again.as_ref()), Seen::Current))
            }
            Want::Absent => Some(matches!(self.head().await, Ok(None))),
            Want::Listed(present) => {
                let listing = self.list_shows_key().await;
                Some(listing.is_ok_and(|(shown, _)| shown == present))
            }
            Want::Cdn => self.cdn_reread().await,
        }
    }
}
