//! list: ListObjectsV2 on the canary's own key as prefix shows the key (list_after_write).
//!
//! Listing with the full key as prefix costs one request and returns at most one entry,
//! however many other objects the bucket holds.

use tokio::time::Instant;

use super::{Cycle, Want};
use crate::report::{Check, Failure, Reason, RequestIds};

/// Lists the canary; when it is missing, measures how long until it shows.
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    let since = match c.current() {
        Some(v) => v.acked_at,
        None => return Ok(()),
    };
    let (present, ids) = listed(c).await?;
    if present {
        return Ok(());
    }
    let failure = Failure::wrong_answer(
        Reason::MissingFromList,
        "ListObjectsV2",
        &ids,
        "ListObjectsV2 after an acknowledged PutObject does not show the key",
    );
    c.pending_failure = Some(failure.clone());
    let i = c.violation(Check::ListAfterWrite, since);
    relist_until(c, true, i, since).await;
    Err(failure)
}

/// Lists `c.key` as a prefix and says whether the key is there.
pub(super) async fn listed(c: &mut Cycle<'_>) -> Result<(bool, RequestIds), Failure> {
    c.count();
    let (keys, _, ids) = c.bucket.list(&c.key, None).await?;
    Ok((keys.contains(&c.key), ids))
}

/// Re-lists until the key's presence is `want` or the deadline, for violation `i` measured
/// from `since`; a failed listing counts as a stale one.
pub(super) async fn relist_until(c: &mut Cycle<'_>, want: bool, i: usize, since: Instant) {
    c.reread_until(i, since, Want::Listed(want)).await;
}
