//! get: GetObject returns the bytes of the last acknowledged write (read_after_write); the same
//! read serves [`super::overwrite`] for read_after_overwrite.

use tokio::time::Instant;

use super::{Cycle, Seen, Want};
use crate::report::{Check, Failure, Reason};

/// Reads the canary back.
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    read_current(c, Check::ReadAfterWrite).await
}

/// GetObject that must return the current version; on a stale answer, records a violation of
/// `check` and keeps re-reading until the answer is current or the deadline, to measure how long
/// the stale view lasted.
pub(super) async fn read_current(c: &mut Cycle<'_>, check: Check) -> Result<(), Failure> {
    let since = c.current().map(|v| v.acked_at).unwrap_or_else(Instant::now);
    let first = c.get().await?;
    let ids = match c.judge(first.as_ref()) {
        Seen::Current => return Ok(()),
        Seen::Corrupt(why) => {
            let ids = first.map(|r| r.ids).unwrap_or_default();
            return Err(Failure::wrong_answer(
                Reason::ContentMismatch,
                "GetObject",
                &ids,
                why,
            ));
        }
        Seen::Stale => first.map(|r| r.ids).unwrap_or_default(),
    };
    let what = if c.versions.len() > 1 {
        "an older version"
    } else {
        "404"
    };
    let failure = Failure::wrong_answer(
        Reason::StaleRead,
        "GetObject",
        &ids,
        format!("GetObject after an acknowledged PutObject returned {what}"),
    );
    Err(c.stale_view(failure, check, since, Want::Current).await)
}
