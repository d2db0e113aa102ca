//! conditional: conditional writes are enforced. `If-None-Match: *` on an existing key is
//! refused (conditional_create), `If-Match` with a stale ETag is refused (conditional_update),
//! and `If-Match` with the current ETag succeeds.
//!
//! The step runs after delete, so it first re-creates the canary with `If-None-Match: *`
//! (which must succeed on an absent key); its stale ETag is the previous version's.

use tokio::time::Instant;

use super::{Check, Cycle, Failure, Reason, Version, md5_hex};
use crate::s3::{Condition, S3Failure};

fn refused(e: &S3Failure) -> bool {
    matches!(e.status, Some(412) | Some(409) | Some(304))
        || matches!(
            e.code.as_deref(),
            Some("PreconditionFailed") | Some("ConditionalRequestConflict")
        )
}

/// Runs the three conditional writes (and the re-create when the key is absent).
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    if !c.may_exist {
        let body = c.new_body();
        c.may_exist = true;
        c.count();
        let w = c
            .bucket
            .put(&c.key, body.clone(), &Condition::IfNoneMatchAny)
            .await
            .map_err(|e| Failure::s3("PutObject", e))?;
        c.versions.push(Version {
            body,
            etag: w.etag,
            acked_at: Instant::now(),
        });
    }
    let current = c.current().and_then(|v| v.etag.clone());
    let stale = match c.versions.len() {
        n if n >= 2 => c.versions[n - 2].etag.clone(),
        _ => None,
    }
    .unwrap_or_else(|| format!("\"{}\"", md5_hex(b"s3canary: an ETag no object has")));

    let mut failure = None;
    // 1. Create-only on an existing key must be refused.
    let body = c.new_body();
    c.count();
    match c
        .bucket
        .put(&c.key, body.clone(), &Condition::IfNoneMatchAny)
        .await
    {
        Err(e) if refused(&e) => {}
        Err(e) => return Err(Failure::s3("PutObject", e)),
        Ok(w) => {
            c.violation(Check::ConditionalCreate, Instant::now());
            failure.get_or_insert(Failure::wrong_answer(
                Reason::PreconditionIgnored,
                "PutObject",
                &w.ids,
                "PutObject with If-None-Match: * replaced an existing object",
            ));
            c.versions.push(Version {
                body,
                etag: w.etag,
                acked_at: Instant::now(),
            });
        }
    }
    // 2. Replace-if-unchanged with a stale ETag must be refused.
    let body = c.new_body();
    c.count();
    match c
        .bucket
        .put(&c.key, body.clone(), &Condition::IfMatch(stale))
        .await
    {
        Err(e) if refused(&e) => {}
        Err(e) => return Err(Failure::s3("PutObject", e)),
        Ok(w) => {
            c.violation(Check::ConditionalUpdate, Instant::now());
            failure.get_or_insert(Failure::wrong_answer(
                Reason::PreconditionIgnored,
                "PutObject",
                &w.ids,
                "PutObject with If-Match and a stale ETag replaced the object",
            ));
            c.versions.push(Version {
                body,
                etag: w.etag,
                acked_at: Instant::now(),
            });
        }
    }
    if let Some(f) = failure {
        return Err(f);
    }
    // 3. Replace-if-unchanged with the current ETag must succeed.
    let Some(current) = current else {
        return Err(Failure::wrong_answer(
            Reason::ContentMismatch,
            "PutObject",
            &Default::default(),
            "S3 returned no ETag for the canary, so If-Match cannot be checked",
        ));
    };
    let body = c.new_body();
    c.count();
    let w = c
        .bucket
        .put(&c.key, body.clone(), &Condition::IfMatch(current))
        .await
        .map_err(|e| Failure::s3("PutObject", e))?;
    c.versions.push(Version {
        body,
        etag: w.etag,
        acked_at: Instant::now(),
    });
    Ok(())
}
