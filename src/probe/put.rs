//! put: PutObject of a fresh canary; the body's checksum is kept for the reads that follow.

use tokio::time::Instant;

use super::{Cycle, Failure, Reason, Version, md5_hex};
use crate::config::Sse;
use crate::s3::Condition;

/// Writes the first version of the canary.
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    let body = c.new_body();
    // Even a PUT that errors or times out may have landed: clean up in any case.
    c.may_exist = true;
    c.count();
    let w = c
        .bucket
        .put(&c.key, body.clone(), &Condition::None)
        .await
        .map_err(|e| Failure::s3("PutObject", e))?;
    // Without KMS, a single-part ETag is the body's MD5: a mismatch means the bytes S3 stored
    // are not the bytes sent.
    if !matches!(c.bucket.sse, Some(Sse::Kms { .. }))
        && let Some(etag) = &w.etag
    {
        let etag = etag.trim_matches('"');
        let md5 = md5_hex(&body);
        if etag.len() == 32 && etag != md5 {
            return Err(Failure::wrong_answer(
                Reason::ContentMismatch,
                "PutObject",
                &w.ids,
                format!("ETag {etag} is not the MD5 of the body sent ({md5})"),
            ));
        }
    }
    c.versions.push(Version {
        body,
        etag: w.etag,
        acked_at: Instant::now(),
    });
    Ok(())
}
