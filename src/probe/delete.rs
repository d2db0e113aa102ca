//! delete: DeleteObject, then HeadObject is 404 (read_after_delete) and ListObjectsV2 omits the
//! key (list_after_delete).

use tokio::time::Instant;

use super::{Cycle, Want};
use crate::report::{Check, Failure, Reason};

/// Deletes the canary and checks that neither a read nor a listing still shows it.
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    c.count();
    let deleted = c.bucket.delete(&c.key).await?;
    c.created.extend(deleted.marker_version_id);
    let since = Instant::now();
    c.may_exist = false;

    let mut first_failure = None;
    c.count();
    if let Some(h) = c.bucket.head(&c.key).await? {
        let failure = Failure::wrong_answer(
            Reason::StaleRead,
            "HeadObject",
            &h.ids,
            "HeadObject after an acknowledged DeleteObject still finds the key",
        );
        c.pending_failure = Some(failure.clone());
        let i = c.violation(Check::ReadAfterDelete, since);
        c.reread_until(i, since, Want::Absent).await;
        first_failure = Some(failure);
    }

    c.count();
    let (present, ids) = c.list_shows_key().await?;
    if present {
        let failure = Failure::wrong_answer(
            Reason::StaleRead,
            "ListObjectsV2",
            &ids,
            "ListObjectsV2 after an acknowledged DeleteObject still shows the key",
        );
        if c.pending_failure.is_none() {
            c.pending_failure = Some(failure.clone());
        }
        let i = c.violation(Check::ListAfterDelete, since);
        c.reread_until(i, since, Want::Listed(false)).await;
        first_failure.get_or_insert(failure);
    }
    match first_failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}
