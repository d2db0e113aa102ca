//! list: ListObjectsV2 on the canary's own key as prefix shows the key (list_after_write).

use super::{Cycle, Want};
use crate::report::{Check, Failure, Reason};

/// Lists the canary; when it is missing, measures how long until it shows.
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    let since = match c.current() {
        Some(v) => v.acked_at,
        None => return Ok(()),
    };
    let (present, ids) = c.list_shows_key().await?;
    if present {
        return Ok(());
    }
    let failure = Failure::wrong_answer(
        Reason::MissingFromList,
        "ListObjectsV2",
        &ids,
        "ListObjectsV2 after an acknowledged PutObject does not show the key",
    );
    let check = Check::ListAfterWrite;
    Err(c
        .stale_view(failure, check, since, Want::Listed(true))
        .await)
}
