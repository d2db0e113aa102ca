//! The multipart probe: one upload per interval the way the SDKs' transfer managers upload
//! anything large. CreateMultipartUpload, `parts` UploadParts (`part_size` each, the last one
//! the target's `object_size`), CompleteMultipartUpload, then ranged reads of both sides of
//! every part boundary (which also give the object's size), then the delete.
//!
//! Any failure, the deadline and shutdown abort the upload (AbortMultipartUpload, always; a
//! create in flight is let answer first, so its upload id is known);
//! what the upload may have created is deleted. Uploads an earlier run left behind are found
//! by the sweep ([`sweep`]).
//!
//! The bytes of an upload are a function of a random seed and the offset, so any range can be
//! checked without keeping the object: one part is in memory at a time.

pub mod sweep;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::canary;
use crate::config::{Multipart, Target};
use crate::probe::CLEANUP_BUDGET;
use crate::report::{Failure, Probe, ProbeResult, Reason, Skip};
use crate::s3::Bucket;

/// Bytes read on each side of a part boundary.
pub const AROUND: u64 = 16;

/// The bytes at offsets `from..to` of an upload with `seed`: eight bytes per word, each word a
/// SplitMix64 step of the seed and the word's index.
pub fn pattern(seed: u64, from: u64, to: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity((to - from) as usize);
    let mut o = from;
    while o < to {
        let word = o / 8;
        let mut z = seed.wrapping_add(word.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let bytes = z.to_le_bytes();
        let (start, end) = ((o % 8) as usize, ((to - word * 8).min(8)) as usize);
        out.extend_from_slice(&bytes[start..end]);
        o = word * 8 + end as u64;
    }
    out
}

/// Whether an ETag has the multipart form S3 gives: `"<32 hex>-<parts>"`.
pub fn is_multipart_etag(etag: &str, parts: u32) -> bool {
    let e = etag.trim_matches('"');
    e.split_once('-').is_some_and(|(hex, n)| {
        hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && n == parts.to_string()
    })
}

/// A target's multipart probe: its settings and what it has said once.
#[derive(Debug)]
pub struct Monitor {
    target: Target,
    cfg: Multipart,
    /// Whether the store's non-multipart ETag form was reported (once per run of the daemon).
    etag_noted: AtomicBool,
}

impl Monitor {
    /// The probe of `t`, if it runs the multipart probe.
    pub fn new(t: &Target) -> Option<Monitor> {
        let cfg = t.multipart.clone().filter(|_| t.runs(Probe::Multipart))?;
        Some(Monitor {
            target: t.clone(),
            cfg,
            etag_noted: AtomicBool::new(false),
        })
    }

    /// The settings.
    pub fn cfg(&self) -> &Multipart {
        &self.cfg
    }

    /// How long one upload may take: the target's timeout, and at least 30 s for the bytes
    /// (never more than the probe's interval).
    pub fn budget(&self) -> Duration {
        self.cfg.budget(self.target.timeout)
    }

    /// One upload, read back and deleted, within [`Monitor::budget`]. Shutdown (`token`)
    /// starts no upload, lets a create in flight answer (within the target's timeout) and then
    /// cuts off the part or read in flight. Whatever happened, the upload is aborted unless it
    /// completed, and what it may have created is deleted.
    pub async fn run(&self, bucket: &Bucket, token: &CancellationToken) -> ProbeResult {
        let start = Instant::now();
        let budget = self.budget();
        let mut up = Upload {
            bucket,
            key: canary::new_key(&self.target.canary_prefix()),
            id: None,
            completed: false,
            may_exist: false,
            version: None,
        };
        if token.is_cancelled() {
            return ProbeResult::not_run(Probe::Multipart, Skip::Shutdown);
        }
        // The create runs to its answer, bounded by the SDK's operation timeout (the target's
        // timeout, within the budget): cut off by shutdown, it could leave an upload whose id
        // nobody knows, which only the sweep would find, an orphan_ttl later.
        let outcome = match up.create().await {
            // Shutdown came during the create: not a run; the upload it made is aborted below.
            _ if token.is_cancelled() => None,
            Err(f) => Some(Err(f)),
            Ok(id) => {
                let steps = up.steps(&id, &self.cfg, self.target.object_size);
                let left = budget.saturating_sub(start.elapsed());
                tokio::select! {
                    biased;
                    _ = token.cancelled() => None,
                    r = tokio::time::timeout(left, steps) => Some(match r {
                        Ok(r) => r,
                        Err(_) => Err(Failure::timeout(start.elapsed(), budget)),
                    }),
                }
            }
        };
        let took = start.elapsed();
        up.clean_up(&self.target.name).await;
        match outcome {
            None => ProbeResult::not_run(Probe::Multipart, Skip::Shutdown),
            Some(Ok(etag)) => {
                self.note_etag(etag.as_deref());
                ProbeResult::ran(Probe::Multipart, Ok(()), took)
            }
            Some(Err(f)) => ProbeResult::ran(Probe::Multipart, Err(f), took),
        }
    }

    /// Says once that the store gives completed uploads another ETag form than S3's
    /// `"<hex>-N"` (applications that parse ETags break on it); not a failure.
    fn note_etag(&self, etag: Option<&str>) {
        let ok = etag.is_some_and(|e| is_multipart_etag(e, self.cfg.parts));
        if !ok && !self.etag_noted.swap(true, Ordering::Relaxed) {
            let etag = etag.map(|e| e.trim_matches('"')).filter(|e| !e.is_empty());
            tracing::info!(target = %self.target.name, etag = etag.unwrap_or("none"),
                "the store answers a completed multipart upload with an ETag that is not \
                 S3's \"<md5>-<parts>\" form, or none (reported once; not a failure)");
        }
    }
}

/// One upload in progress: what cleanup must undo.
struct Upload<'a> {
    bucket: &'a Bucket,
    key: String,
    id: Option<String>,
    completed: bool,
    /// The object may exist (a complete was sent and not refused).
    may_exist: bool,
    /// The version the complete created, on a versioned bucket.
    version: Option<String>,
}

impl Upload<'_> {
    /// CreateMultipartUpload; the upload id, kept for the abort.
    async fn create(&mut self) -> Result<String, Failure> {
        let (id, _) = self.bucket.create_multipart(&self.key).await?;
        self.id = Some(id.clone());
        Ok(id)
    }

    /// The parts of upload `id`, the complete, its reads and its delete; the completed
    /// upload's ETag.
    async fn steps(
        &mut self,
        id: &str,
        m: &Multipart,
        last: u64,
    ) -> Result<Option<String>, Failure> {
        let seed = rand::random::<u64>();
        let total = m.object_bytes(last);
        let mut parts = Vec::with_capacity(m.parts as usize);
        for n in 1..=m.parts {
            let from = u64::from(n - 1) * m.part_size;
            let to = if n == m.parts {
                total
            } else {
                from + m.part_size
            };
            let body = Bytes::from(pattern(seed, from, to));
            let etag = self
                .bucket
                .upload_part(&self.key, id, n as i32, body)
                .await?;
            parts.push((n as i32, etag));
        }
        self.may_exist = true;
        let w = match self.bucket.complete_multipart(&self.key, id, &parts).await {
            Ok(w) => w,
            Err(f) => {
                if f.changed_nothing() || f.status == Some(200) {
                    self.may_exist = false;
                }
                return Err(f);
            }
        };
        self.completed = true;
        self.version = w.version_id.clone();
        for n in 1..m.parts {
            let boundary = u64::from(n) * m.part_size;
            let (first, end) = (boundary - AROUND, (boundary + AROUND).min(total));
            let what = format!(
                "bytes {first}-{} across the boundary of parts {n} and {}",
                end - 1,
                n + 1
            );
            let Some(r) = self.bucket.get_range(&self.key, first, end - 1).await? else {
                return Err(Failure::wrong_answer(
                    Reason::StaleRead,
                    "GetObject",
                    &w.ids,
                    format!("GetObject of {what} answered 404 after CompleteMultipartUpload"),
                ));
            };
            if r.total != Some(total) {
                let size = r
                    .total
                    .map_or("of unknown size".into(), |s| format!("{s} bytes"));
                return Err(Failure::wrong_answer(
                    Reason::ContentMismatch,
                    "GetObject",
                    &r.ids,
                    format!(
                        "the completed object is {size}; {} parts of {total} bytes were uploaded",
                        m.parts
                    ),
                ));
            }
            if r.body.as_ref() != pattern(seed, first, end).as_slice() {
                return Err(Failure::wrong_answer(
                    Reason::ContentMismatch,
                    "GetObject",
                    &r.ids,
                    format!("{what} are not the bytes uploaded"),
                ));
            }
        }
        match &self.version {
            Some(v) => self.bucket.delete_version(&self.key, v).await?,
            None => self.bucket.delete(&self.key).await?.ids,
        };
        self.may_exist = false;
        Ok(w.etag)
    }

    /// Aborts the upload unless it completed, and deletes what it may have created, within
    /// [`CLEANUP_BUDGET`]; what fails here is left to the sweeps.
    async fn clean_up(&mut self, target: &str) {
        let work = async {
            if let Some(id) = self.id.as_deref().filter(|_| !self.completed) {
                self.bucket.abort_multipart(&self.key, id).await?;
            }
            if self.may_exist {
                match &self.version {
                    Some(v) => {
                        self.bucket.delete_version(&self.key, v).await?;
                    }
                    None => {
                        self.bucket.delete(&self.key).await?;
                    }
                }
            }
            Ok::<(), Failure>(())
        };
        match tokio::time::timeout(CLEANUP_BUDGET, work).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(target = %target, key = %self.key,
                reason = e.reason.as_str(), "multipart cleanup failed; the sweeps will retry: {}",
                e.message),
            Err(_) => tracing::warn!(target = %target, key = %self.key,
                "multipart cleanup timed out; the sweeps will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{is_multipart_etag, pattern};

    #[test]
    fn any_range_of_the_pattern_is_the_same_bytes() {
        let whole = pattern(7, 0, 100);
        assert_eq!(whole.len(), 100);
        for (a, b) in [(0, 1), (3, 17), (8, 16), (13, 100), (99, 100)] {
            assert_eq!(pattern(7, a, b), whole[a as usize..b as usize], "{a}..{b}");
        }
        assert_ne!(pattern(7, 0, 64), pattern(8, 0, 64));
        assert_ne!(pattern(7, 0, 8), pattern(7, 8, 16));
    }

    #[test]
    fn multipart_etags_are_recognised() {
        assert!(is_multipart_etag(
            "\"d41d8cd98f00b204e9800998ecf8427e-2\"",
            2
        ));
        assert!(!is_multipart_etag(
            "\"d41d8cd98f00b204e9800998ecf8427e-3\"",
            2
        ));
        assert!(!is_multipart_etag(
            "\"d41d8cd98f00b204e9800998ecf8427e\"",
            2
        ));
    }
}
