//! delete: DeleteObject, then HeadObject is 404 (read_after_delete) and ListObjectsV2 omits the
//! key (list_after_delete).

use tokio::time::Instant;

use super::{Cycle, Want};
use crate::report::{Check, Failure, Reason};

/// Deletes the canary and checks that neither a read nor a listing still shows it.
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    c.delete().await?;
    let since = Instant::now();

    let mut first_failure = None;
    if let Some(h) = c.head().await? {
        let failure = Failure::wrong_answer(
            Reason::StaleRead,
            "HeadObject",
            &h.ids,
            "HeadObject after an acknowledged DeleteObject still finds the key",
        );
        let check = Check::ReadAfterDelete;
        first_failure = Some(c.stale_view(failure, check, since, Want::Absent).await);
    }

    let (present, ids) = c.list_shows_key().await?;
    if present {
        let failure = Failure::wrong_answer(
            Reason::StaleRead,
            "ListObjectsV2",
            &ids,
            "ListObjectsV2 after an acknowledged DeleteObject still shows the key",
        );
        let check = Check::ListAfterDelete;
        let failure = c
            .stale_view(failure, check, since, Want::Listed(false))
            .await;
        first_failure.get_or_insert(failure);
    }
    match first_failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}
