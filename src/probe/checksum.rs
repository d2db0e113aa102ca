//! checksum: an upload as current SDKs send it. A PutObject with a full-object checksum (the
//! algorithm and form this cycle's, see [`rotation`]), read back with checksum mode on: the
//! same bytes and the same checksum; then a PutObject with a wrong checksum, which must be
//! refused.
//!
//! Runs last, on the canary key: what it writes is a version of the canary, and cleanup deletes
//! it with the others (also a wrongly accepted one).

use super::Cycle;
use crate::report::{Failure, Reason};
use crate::s3::checksum::{Algorithm, Form};

/// The algorithm and form of the cycle numbered `n`: every pair of `algorithms` and the two
/// forms in turn, one per cycle.
pub(crate) fn rotation(algorithms: &[Algorithm], n: u64) -> (Algorithm, Form) {
    let len = algorithms.len().max(1) as u64;
    let k = n % (2 * len);
    let a = algorithms
        .get((k % len) as usize)
        .copied()
        .unwrap_or(Algorithm::Crc32);
    (a, Form::ALL[(k / len) as usize])
}

/// `e`, the answer to the checksummed PutObject: a refusal of the form or algorithm (501, or a
/// 4xx that is not a denial or a missing bucket) is `checksum_unsupported`, its message saying
/// what was sent.
fn unsupported(mut e: Failure, a: Algorithm, form: Form) -> Failure {
    let refused = e.status == Some(501) || e.reason == Reason::ClientError;
    if refused {
        let status = e.status.map(|s| format!("{s} ")).unwrap_or_default();
        let code = e.code.as_deref().unwrap_or("");
        e.message = format!(
            "PutObject with {} was refused: {status}{code}: {}",
            form.describe(a),
            e.message
        );
        e.reason = Reason::ChecksumUnsupported;
    }
    e
}

pub(crate) async fn run(c: &mut Cycle<'_>) -> Result<(), Failure> {
    let (a, form) = c.checksum.unwrap_or((Algorithm::Crc32, Form::Header));
    let (w, body) = c
        .write_checksummed(a, form)
        .await
        .map_err(|e| unsupported(e, a, form))?;
    let want = a.of(&body);
    let ids = w.written.ids.clone();
    if let Some(echoed) = &w.echoed
        && *echoed != want
    {
        return Err(Failure::wrong_answer(
            Reason::ChecksumMismatch,
            "PutObject",
            &ids,
            format!(
                "PutObject with {} answered {} {echoed}; the bytes sent have {want}",
                form.describe(a),
                a.name()
            ),
        ));
    }
    let Some(read) = c.get_checksummed(a).await? else {
        return Err(Failure::wrong_answer(
            Reason::StaleRead,
            "GetObject",
            &ids,
            "GetObject with checksum mode on answered 404 right after the checksummed PutObject",
        ));
    };
    // A checksum returned for other bytes first: the SDK then refuses the body itself.
    if let Some(got) = &read.checksum
        && *got != want
    {
        return Err(Failure::wrong_answer(
            Reason::ChecksumMismatch,
            "GetObject",
            &read.ids,
            format!(
                "GetObject with checksum mode on returned {} {got}; the bytes written have {want}",
                a.name()
            ),
        ));
    }
    // Then the bytes, before a missing checksum: a store that keeps other bytes than were
    // sent corrupts what applications upload, whatever it does with checksums.
    let got = read.body?;
    if got != body {
        // s3rver keeps an aws-chunked body as it came, chunk headers and trailer included: the
        // trailer's `x-amz-checksum-<algorithm>:` line is then in the object.
        let trailer_kept = got
            .windows(15)
            .any(|w| w.eq_ignore_ascii_case(b"x-amz-checksum-"));
        let undecoded = if form == Form::Trailer && trailer_kept {
            " (the store kept the aws-chunked encoding, chunk header and trailer, as the object's bytes)"
        } else {
            ""
        };
        return Err(Failure::wrong_answer(
            Reason::ContentMismatch,
            "GetObject",
            &read.ids,
            format!(
                "GetObject returned {} bytes with MD5 {}, not the {} bytes written with {}{undecoded}",
                got.len(),
                crate::canary::md5_hex(&got),
                body.len(),
                form.describe(a)
            ),
        ));
    }
    if read.checksum.is_none() {
        return Err(Failure::wrong_answer(
            Reason::ChecksumIgnored,
            "GetObject",
            &read.ids,
            format!(
                "GetObject with checksum mode on returned no {} checksum: the store kept none of the upload's ({})",
                a.name(),
                form.describe(a)
            ),
        ));
    }
    // A checksum of other bytes, in the same form as S3's: the store must refuse it.
    let mut wrong = a.of(b"s3canary: a checksum of other bytes");
    if wrong == want {
        wrong = a.of(b"s3canary: a checksum of yet other bytes");
    }
    match c.put_wrong_checksum(a, &wrong).await {
        Err(e) if e.status == Some(400) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::{Algorithm, Form, rotation};

    #[test]
    fn the_rotation_visits_every_algorithm_in_both_forms() {
        for algorithms in [
            Algorithm::ALL.to_vec(),
            vec![Algorithm::Crc32, Algorithm::Sha256],
        ] {
            let n = 2 * algorithms.len() as u64;
            let mut seen: Vec<(Algorithm, Form)> =
                (0..n).map(|i| rotation(&algorithms, i)).collect();
            seen.sort_by_key(|(a, f)| (*a, *f == Form::Trailer));
            seen.dedup();
            assert_eq!(seen.len() as u64, n, "{algorithms:?}");
            assert_eq!(rotation(&algorithms, 0), rotation(&algorithms, n));
        }
    }
}
