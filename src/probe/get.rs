//! get: GetObject returns the bytes of the last acknowledged write (read_after_write), and the
//! read that [`super::overwrite`] uses for read_after_overwrite.

use tokio::time::Instant;

use super::{Cycle, Want};
use crate::canary::md5_hex;
use crate::report::{Check, Failure, Reason};
use crate::s3::Read;

/// Reads the canary back.
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    read_current(c, Check::ReadAfterWrite).await
}

/// How a read compares with what was written.
enum Seen {
    Current,
    /// 404, or an older version's bytes.
    Stale,
    /// Bytes of no version this cycle wrote, or the right bytes with a wrong ETag.
    Corrupt(String),
}

/// Whether `read` is the current version.
pub(super) fn is_current(c: &Cycle<'_>, read: Option<&Read>) -> bool {
    matches!(judge(c, read), Seen::Current)
}

fn judge(c: &Cycle<'_>, read: Option<&Read>) -> Seen {
    let Some(cur) = c.current() else {
        return Seen::Corrupt("no acknowledged version to compare with".into());
    };
    let Some(r) = read else { return Seen::Stale };
    if r.body == cur.body {
        match (&r.etag, &cur.etag) {
            (Some(a), Some(b)) if a != b => {
                Seen::Corrupt(format!("ETag {a} differs from the PUT's ETag {b}"))
            }
            _ => Seen::Current,
        }
    } else if c.versions.iter().rev().skip(1).any(|v| v.body == r.body) {
        Seen::Stale
    } else {
        Seen::Corrupt(format!(
            "{} bytes with MD5 {} match no version written (expected {} bytes, MD5 {})",
            r.body.len(),
            md5_hex(&r.body),
            cur.body.len(),
            md5_hex(&cur.body)
        ))
    }
}

/// GetObject that must return the current version; on a stale answer, records a violation of
/// `check` and keeps re-reading until the answer is current or the deadline, to measure how long
/// the stale view lasted.
pub(super) async fn read_current(c: &mut Cycle<'_>, check: Check) -> Result<(), Failure> {
    let since = c.current().map(|v| v.acked_at).unwrap_or_else(Instant::now);
    c.count();
    let first = c.bucket.get(&c.key).await?;
    let ids = match judge(c, first.as_ref()) {
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
    c.pending_failure = Some(failure.clone());
    let i = c.violation(check, since);
    c.reread_until(i, since, Want::Current).await;
    Err(failure)
}
