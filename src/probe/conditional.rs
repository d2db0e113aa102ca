//! conditional: conditional writes are enforced. `If-None-Match: *` on an existing key is
//! refused (conditional_create), `If-Match` with a stale ETag is refused (conditional_update),
//! and `If-Match` with the current ETag succeeds.
//!
//! The step runs after delete, so it first re-creates the canary with `If-None-Match: *`
//! (which must succeed on an absent key); its stale ETag is the previous version's. Every
//! failure names the request, the answer expected and the answer received, because stores
//! differ exactly here (some refuse `If-Match` with the current quoted ETag, some ignore
//! conditions altogether).

use super::Cycle;
use crate::canary::md5_hex;
use crate::report::{Check, Failure, Reason};
use crate::s3::Condition;
use crate::s3::error::is_refusal;

/// Whether S3 refused a conditional write.
fn refused(e: &Failure) -> bool {
    is_refusal(e.code.as_deref(), e.status)
}

/// How S3 answered, for a message: "412 PreconditionFailed: <message>" or the failure reason.
fn received(e: &Failure) -> String {
    let status = e
        .status
        .map_or_else(|| e.reason.as_str().to_string(), |s| s.to_string());
    let code = e
        .code
        .as_deref()
        .map(|c| format!(" {c}"))
        .unwrap_or_default();
    let message = if e.message.is_empty() {
        String::new()
    } else {
        format!(": {}", e.message)
    };
    format!("{status}{code}{message}")
}

/// `e`, with its message saying which request it answered and what was expected instead.
fn named(mut e: Failure, request: &str, expected: &str) -> Failure {
    e.message = format!("{request}: expected {expected}, got {}", received(&e));
    e
}

/// Runs the three conditional writes (and the re-create when the key is absent).
pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    if !c.may_exist {
        c.write(&Condition::IfNoneMatchAny)
            .await
            .map_err(|e| named(e, "PutObject with If-None-Match: * on an absent key", "200"))?;
    }
    let current = c.current().and_then(|v| v.etag.clone());
    let stale = match c.versions.len() {
        n if n >= 2 => c.versions[n - 2].etag.clone(),
        _ => None,
    }
    .unwrap_or_else(|| format!("\"{}\"", md5_hex(b"s3canary: an ETag no object has")));

    let mut failure = None;
    // 1. Create-only on an existing key must be refused; 2. replace-if-unchanged with a stale
    // ETag must be refused.
    let must_refuse = [
        (
            Condition::IfNoneMatchAny,
            Check::ConditionalCreate,
            "PutObject with If-None-Match: * on an existing key",
        ),
        (
            Condition::IfMatch(stale),
            Check::ConditionalUpdate,
            "PutObject with If-Match and a stale ETag",
        ),
    ];
    for (cond, check, request) in must_refuse {
        let body = c.new_body();
        match c.put_expecting_refusal(body.clone(), &cond).await {
            Err(e) if refused(&e) => {}
            Err(e) => return Err(named(e, request, "412")),
            Ok(w) => {
                c.precondition_ignored(check);
                failure.get_or_insert(Failure::wrong_answer(
                    Reason::PreconditionIgnored,
                    "PutObject",
                    &w.ids,
                    format!("{request}: expected 412, got 200 (the object was replaced)"),
                ));
                c.acknowledged(body, &w);
            }
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
    c.write(&Condition::IfMatch(current))
        .await
        .map_err(|e| named(e, "PutObject with If-Match and the current ETag", "200"))?;
    Ok(())
}
