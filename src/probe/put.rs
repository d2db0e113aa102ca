//! put: PutObject of a fresh canary; the body's checksum is kept for the reads that follow.

use super::Cycle;
use crate::canary::md5_hex;
use crate::report::{Failure, Reason};
use crate::s3::Condition;

/// Writes the first version of the canary.
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    let (w, body) = c.write(&Condition::None).await?;
    // Without KMS, a single-part ETag is the body's MD5: a mismatch means the bytes S3 stored
    // are not the bytes sent.
    if !c.kms()
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
    Ok(())
}
