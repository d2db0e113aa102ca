//! The durability set: long-lived objects that must never change or disappear, so data at rest
//! is watched too (lost objects, silent corruption, a lifecycle rule that deletes too much, a
//! KMS key that can no longer decrypt old objects).
//!
//! A target's set is `objects` objects under `<prefix>durability/<target>/`. Object `i`'s
//! content is derived from the target's name and `i` alone, and its key carries the content's
//! SHA-256: `<index:05>-<sha256 hex>`. So nothing local is needed to know what must exist and
//! what it must hold, and a restart recognises the set.
//!
//! The set is seeded once, when none of it exists. When some objects exist and some do not, the
//! missing ones are lost: reported, never silently re-created. Only `s3canary durability reseed`
//! writes them again. Each cycle reads one object (round robin) and verifies its SHA-256; every
//! `objects` cycles one LIST counts the set. The orphan sweep never looks under `durability/`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::config::Target;
use crate::report::{DurabilityCount, Failure, Probe, ProbeResult, Reason, Sink, TargetLabels};
use crate::s3::{Bucket, Condition};

/// Bytes of every object of the set.
pub const OBJECT_SIZE: usize = 1024;

/// The folder of `t`'s set: `<prefix>durability/<target>/`.
pub fn folder(t: &Target) -> String {
    format!("{}durability/{}/", t.prefix, t.name)
}

/// The content of object `index` of `target`'s set: a header naming it, then bytes drawn from
/// a SHA-256 chain seeded by the header.
pub fn content(target: &str, index: u32) -> Bytes {
    let header = format!("s3canary durability object {index} of target {target}\n");
    let mut out = header.clone().into_bytes();
    let mut block: [u8; 32] = Sha256::digest(header.as_bytes()).into();
    while out.len() < OBJECT_SIZE {
        out.extend(
            block
                .iter()
                .map(|b| b"abcdefghijklmnopqrstuvwxyz012345"[usize::from(*b) % 32]),
        );
        block = Sha256::digest(block).into();
    }
    out.truncate(OBJECT_SIZE);
    Bytes::from(out)
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The key of object `index` of `t`'s set.
pub fn key(t: &Target, index: u32) -> String {
    format!(
        "{}{index:05}-{}",
        folder(t),
        sha256_hex(&content(&t.name, index))
    )
}

/// Every key under `folder` (all pages).
async fn list_all(bucket: &Bucket, folder: &str) -> Result<HashSet<String>, Failure> {
    let mut keys = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let (page, truncated, _) = bucket.list(folder, after.as_deref()).await?;
        after = page.last().cloned();
        keys.extend(page);
        if !truncated || after.is_none() {
            return Ok(keys);
        }
    }
}

/// Writes object `index` of `t`'s set.
async fn write(bucket: &Bucket, t: &Target, index: u32) -> Result<(), Failure> {
    bucket
        .put(&key(t, index), content(&t.name, index), &Condition::None)
        .await
        .map(|_| ())
}

/// Reads object `index` of `t`'s set and verifies it.
pub async fn verify(bucket: &Bucket, t: &Target, index: u32) -> Result<(), Failure> {
    let key = key(t, index);
    match bucket.get(&key).await? {
        None => Err(Failure::local(
            Reason::ObjectLost,
            format!("{key}: GetObject answered 404 for an object of the durability set"),
        )),
        Some(r) => {
            let got = sha256_hex(&r.body);
            if key.ends_with(&got) {
                Ok(())
            } else {
                Err(Failure::wrong_answer(
                    Reason::ObjectCorrupt,
                    "GetObject",
                    &r.ids,
                    format!(
                        "{key}: {} bytes with SHA-256 {got}, not the one its key carries",
                        r.body.len()
                    ),
                ))
            }
        }
    }
}

/// What `reseed` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reseeded {
    pub rewritten: Vec<u32>,
    pub intact: u32,
}

/// Writes again every object of `t`'s set that is missing or corrupt (the operator's command).
pub async fn reseed(bucket: &Bucket, t: &Target, objects: u32) -> Result<Reseeded, Failure> {
    let mut done = Reseeded::default();
    for i in 0..objects {
        match verify(bucket, t, i).await {
            Ok(()) => done.intact += 1,
            Err(f) if matches!(f.reason, Reason::ObjectLost | Reason::ObjectCorrupt) => {
                write(bucket, t, i).await?;
                tracing::warn!(target = %t.name, index = i, reason = f.reason.as_str(),
                    "durability object written again by reseed");
                done.rewritten.push(i);
            }
            Err(f) => return Err(f),
        }
    }
    Ok(done)
}

/// The durability probe of one target: seeds once, then one object per cycle.
pub struct Monitor {
    target: Target,
    objects: u32,
    sink: std::sync::Arc<dyn Sink>,
    seeded: AtomicBool,
    next: AtomicU32,
    /// Indexes last found corrupt (the LIST cannot see corruption).
    corrupt: Mutex<HashSet<u32>>,
}

impl Monitor {
    /// A monitor of `t`'s set (None without the durability probe).
    pub fn new(t: &Target, sink: std::sync::Arc<dyn Sink>) -> Option<Self> {
        let d = t
            .durability
            .as_ref()
            .filter(|_| t.runs(Probe::Durability))?;
        Some(Monitor {
            target: t.clone(),
            objects: d.objects,
            sink,
            seeded: AtomicBool::new(false),
            next: AtomicU32::new(0),
            corrupt: Mutex::default(),
        })
    }

    fn labels(&self) -> TargetLabels {
        self.target.labels()
    }

    /// Seeds the set if none of it exists; otherwise leaves it as it is.
    async fn seed_once(&self, bucket: &Bucket) -> Result<(), Failure> {
        if self.seeded.load(Ordering::Relaxed) {
            return Ok(());
        }
        let present = list_all(bucket, &folder(&self.target)).await?;
        let ours = (0..self.objects).filter(|i| present.contains(&key(&self.target, *i)));
        if ours.count() == 0 {
            for i in 0..self.objects {
                write(bucket, &self.target, i).await?;
            }
            tracing::info!(target = %self.target.name, objects = self.objects,
                folder = %folder(&self.target), "durability set seeded");
        }
        self.seeded.store(true, Ordering::Relaxed);
        self.count(bucket).await
    }

    /// Counts the set with one LIST and reports it.
    async fn count(&self, bucket: &Bucket) -> Result<(), Failure> {
        let present = list_all(bucket, &folder(&self.target)).await?;
        let listed = (0..self.objects)
            .filter(|i| present.contains(&key(&self.target, *i)))
            .count() as u32;
        let corrupt = self.corrupt.lock().unwrap().len() as u32;
        let c = DurabilityCount {
            present: listed.saturating_sub(corrupt),
            lost: self.objects - listed,
            corrupt,
        };
        self.sink.durability(&self.labels(), c);
        Ok(())
    }

    /// One cycle's check: seed if needed, read and verify the next object, count the set every
    /// `objects` cycles. The result is the durability probe's run.
    pub async fn check(&self, bucket: &Bucket) -> ProbeResult {
        let start = tokio::time::Instant::now();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let index = n % self.objects;
        let mut r = self.seed_once(bucket).await;
        if r.is_ok() {
            r = verify(bucket, &self.target, index).await;
            let corrupt = matches!(&r, Err(f) if f.reason == Reason::ObjectCorrupt);
            {
                let mut set = self.corrupt.lock().unwrap();
                if corrupt {
                    set.insert(index);
                } else if r.is_ok() {
                    set.remove(&index);
                }
            }
            if (n + 1).is_multiple_of(self.objects)
                && let Err(f) = self.count(bucket).await
            {
                r = r.and(Err(f));
            }
        }
        ProbeResult::ran(Probe::Durability, r, start.elapsed())
    }

    /// A bound for one check: the cycle timeout (a seed writes the whole set once).
    pub fn budget(&self) -> Duration {
        self.target.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_and_keys_depend_on_target_and_index_only() {
        assert_eq!(content("a", 1), content("a", 1));
        assert_ne!(content("a", 1), content("a", 2));
        assert_ne!(content("a", 1), content("b", 1));
        assert_eq!(content("a", 1).len(), OBJECT_SIZE);
        let t = crate::embedded::target_at(
            "http://127.0.0.1:1",
            "primary",
            "bucket-1",
            "probes = [\"put\", \"durability\"]\n[target.durability]\nobjects = 4",
        );
        let k = key(&t, 3);
        assert!(k.starts_with("s3canary/durability/primary/00003-"), "{k}");
        assert!(k.ends_with(&sha256_hex(&content("primary", 3))));
    }
}
