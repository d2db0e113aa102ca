//! What a sweep of a target's multipart uploads reports.

use serde::Serialize;

/// What one sweep of a target's multipart uploads found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UploadSweep {
    /// Our uploads still open after the sweep (in flight, or younger than `orphan_ttl`).
    pub open: u64,
    /// Our uploads older than `orphan_ttl` that the sweep aborted.
    pub aborted: u64,
    /// Our uploads older than `orphan_ttl` whose abort failed (counted in `open` too), and
    /// why the last one did.
    pub abort_failed: u64,
    pub abort_error: Option<String>,
    /// Why the sweep could not look, when the store does not list uploads (501).
    pub unsupported: Option<String>,
}
