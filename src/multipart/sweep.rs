//! The upload sweep: multipart uploads an earlier run left incomplete are billed for their
//! parts and never listed with the objects. At start and every `orphan_ttl/2`, uploads under
//! the target's canary prefix whose key has the canary format and whose key time is older
//! than `orphan_ttl` are aborted. The key's own time decides (some stores report one fixed
//! `Initiated` for every upload); no other upload is ever touched.

use std::time::SystemTime;

use crate::canary;
use crate::config::Target;
use crate::report::{Failure, UploadSweep, bounded_text};
use crate::s3::Bucket;

/// Pages of ListMultipartUploads one sweep reads at most.
pub const MAX_PAGES: usize = 20;

/// One sweep of `t`'s uploads at `now`. A store that does not implement
/// ListMultipartUploads (501) is a sweep that could not look, not a failure; an abort that
/// fails is counted (`abort_failed`) and the sweep goes on. Only a failed listing is an error.
pub async fn sweep(bucket: &Bucket, t: &Target, now: SystemTime) -> Result<UploadSweep, Failure> {
    let prefix = t.canary_prefix();
    let mut found = UploadSweep::default();
    let mut after = None;
    for _ in 0..MAX_PAGES {
        let page = match bucket.list_uploads(&prefix, after.as_ref()).await {
            Ok(p) => p,
            Err(f) if f.status == Some(501) || f.code.as_deref() == Some("NotImplemented") => {
                found.unsupported = Some(bounded_text(
                    &format!(
                        "ListMultipartUploads is not implemented by the store: {}",
                        f.message
                    ),
                    300,
                ));
                return Ok(found);
            }
            Err(f) => return Err(f),
        };
        for u in &page.uploads {
            let Some(written) = canary::parse_key(&prefix, &u.key) else {
                continue;
            };
            if now.duration_since(written).unwrap_or_default() <= t.orphan_ttl {
                found.open += 1;
                continue;
            }
            // A failed abort is counted and the sweep goes on: uploads that stay open are what
            // S3MultipartUploadsLeaking reads.
            match bucket.abort_multipart(&u.key, &u.upload_id).await {
                Ok(()) => found.aborted += 1,
                Err(f) => {
                    found.open += 1;
                    found.abort_failed += 1;
                    found.abort_error = Some(bounded_text(&f.message, 300));
                }
            }
        }
        match page.next {
            Some(next) if after.as_ref() != Some(&next) => after = Some(next),
            _ => break,
        }
    }
    Ok(found)
}
