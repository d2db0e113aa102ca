//! overwrite: a second PutObject, then GetObject returns the new bytes, never the old
//! (read_after_overwrite).

use super::{Cycle, get};
use crate::report::{Check, Failure};
use crate::s3::Condition;

/// Replaces the canary and reads the new version back.
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    c.write(&Condition::None).await?;
    get::read_current(c, Check::ReadAfterOverwrite).await
}
