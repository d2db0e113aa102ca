//! Canary keys: their format, how to find them again, and the orphan sweep.
//!
//! A canary key is `<prefix><name>/<unix_ms>-<16 hex>`: it carries its write time, so a
//! restarted daemon can tell a canary of an earlier run from one in flight without any local
//! state, and nothing but this exact format under the daemon's own prefix is ever deleted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};

use crate::config::Target;
use crate::report::Failure;
use crate::s3::Bucket;

/// A fresh canary key: `<canary_prefix><unix_ms>-<16 hex>`.
pub fn new_key(canary_prefix: &str) -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{canary_prefix}{ms:013}-{:016x}", rand::random::<u64>())
}

/// If `key` is a canary under `canary_prefix` (exact format), its write time.
pub fn parse_key(canary_prefix: &str, key: &str) -> Option<SystemTime> {
    let rest = key.strip_prefix(canary_prefix)?;
    let (ms, rand) = rest.split_once('-')?;
    if ms.len() != 13
        || !ms.bytes().all(|b| b.is_ascii_digit())
        || rand.len() != 16
        || !rand.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_millis(ms.parse().ok()?))
}

/// Hex MD5 of `b`, the ETag S3 gives a single-part, non-KMS object.
pub fn md5_hex(b: &[u8]) -> String {
    let d = Md5::digest(b);
    d.iter().map(|x| format!("{x:02x}")).collect()
}

/// Pages of 1000 keys a canary listing reads at most.
pub const MAX_LIST_PAGES: usize = 20;

/// Keys under `prefix` that have the exact canary format, with their write times (at most
/// [`MAX_LIST_PAGES`] pages). Any other key, even under the prefix, is left out.
pub async fn list(b: &Bucket, prefix: &str) -> Result<Vec<(String, SystemTime)>, Failure> {
    let mut out = Vec::new();
    let mut start_after: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let (keys, truncated, _) = b.list(prefix, start_after.as_deref()).await?;
        out.extend(
            keys.iter()
                .filter_map(|k| parse_key(prefix, k).map(|t| (k.clone(), t))),
        );
        match keys.last() {
            Some(last) if truncated => start_after = Some(last.clone()),
            _ => break,
        }
    }
    Ok(out)
}

/// Deletes canaries under `t`'s canary prefix whose key has the canary format and whose write
/// time is older than `orphan_ttl` at `now`. Any other object is never touched. Returns how
/// many were deleted.
pub async fn sweep_orphans(bucket: &Bucket, t: &Target, now: SystemTime) -> Result<usize, Failure> {
    let mut deleted = 0;
    for (k, written) in list(bucket, &t.canary_prefix()).await? {
        if now.duration_since(written).unwrap_or_default() > t.orphan_ttl {
            bucket.delete(&k).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_foreign_keys_are_rejected() {
        let k = new_key("s3canary/a/");
        assert!(parse_key("s3canary/a/", &k).is_some());
        assert!(parse_key("s3canary/b/", &k).is_none());
        assert!(parse_key("s3canary/a/", "s3canary/a/important.txt").is_none());
        assert!(parse_key("s3canary/a/", "s3canary/a/1700000000000-0123456789abcdeg").is_none());
        assert!(parse_key("s3canary/a/", "s3canary/a/1700000000000-0123456789abcdef/x").is_none());
        let t = parse_key("s3canary/a/", "s3canary/a/1700000000000-0123456789abcdef").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_millis(1_700_000_000_000));
    }
}
