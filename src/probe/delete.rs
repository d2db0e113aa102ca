//! delete: DeleteObject, then HeadObject is 404 (read_after_delete) and ListObjectsV2 omits the
//! key (list_after_delete).

use tokio::time::Instant;

use super::{Check, Cycle, Failure, Reason, listed, relist_until};

/// Deletes the canary and checks that neither a read nor a listing still shows it.
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    c.count();
    c.bucket
        .delete(&c.key)
        .await
        .map_err(|e| Failure::s3("DeleteObject", e))?;
    let since = Instant::now();
    c.may_exist = false;

    let mut first_failure = None;
    c.count();
    let head = c
        .bucket
        .head(&c.key)
        .await
        .map_err(|e| Failure::s3("HeadObject", e))?;
    if let Some(h) = head {
        let failure = Failure::wrong_answer(
            Reason::StaleRead,
            "HeadObject",
            &h.ids,
            "HeadObject after an acknowledged DeleteObject still finds the key",
        );
        c.pending_failure = Some(failure.clone());
        let i = c.violation(Check::ReadAfterDelete, since);
        let mut attempt = 0;
        while c.pause_before_reread(attempt).await {
            attempt += 1;
            c.count();
            match c.bucket.head(&c.key).await {
                Ok(None) => {
                    c.settle(i, since, true);
                    break;
                }
                _ => c.settle(i, since, false),
            }
        }
        first_failure = Some(failure);
    }

    let (present, ids) = listed(c).await?;
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
        relist_until(c, false, i, since).await;
        first_failure.get_or_insert(failure);
    }
    match first_failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}
