//! get: GetObject right after the put returns the same bytes and ETag (read_after_write).

use super::{Check, Cycle, Failure, read_current};

/// Reads the canary back and measures any stale window.
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    read_current(c, Check::ReadAfterWrite).await
}
