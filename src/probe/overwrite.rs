//! overwrite: a second PutObject, then GetObject returns the new bytes, never the old
//! (read_after_overwrite).

use tokio::time::Instant;

use super::{Check, Cycle, Failure, Version, read_current};
use crate::s3::Condition;

/// Replaces the canary and reads the new version back.
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    let body = c.new_body();
    c.may_exist = true;
    c.count();
    let w = c
        .bucket
        .put(&c.key, body.clone(), &Condition::None)
        .await
        .map_err(|e| Failure::s3("PutObject", e))?;
    c.versions.push(Version {
        body,
        etag: w.etag,
        acked_at: Instant::now(),
    });
    read_current(c, Check::ReadAfterOverwrite).await
}
