//! What the fault layer does to upload checksums: refuse aws-chunked trailers (as R2 did),
//! keep them undecoded (as s3rver does), drop checksums (s3rver), accept wrong ones while
//! keeping the right one (moto), and answer a wrong checksum.

use bytes::Bytes;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request};

use super::faults::FaultConfig;

/// Whether an upload's body is aws-chunked with trailing headers (a trailing checksum), as
/// current SDKs send streaming bodies.
pub(super) fn has_trailer(headers: &http::HeaderMap) -> bool {
    headers.contains_key("x-amz-trailer")
        || headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("STREAMING-") && v.ends_with("-TRAILER"))
}

/// `body` aws-chunked again, as it came over the wire: one chunk, the last chunk and the
/// trailer the request announced (`x-amz-trailer`) with the checksum it carried.
fn chunked_again(body: &[u8], headers: &http::HeaderMap, i: &PutObjectInput) -> bytes::Bytes {
    let name = headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("x-amz-checksum-crc32");
    let value = [
        &i.checksum_crc32,
        &i.checksum_crc32c,
        &i.checksum_crc64nvme,
        &i.checksum_sha1,
        &i.checksum_sha256,
    ]
    .into_iter()
    .find_map(|v| v.clone())
    .unwrap_or_default();
    let mut out = format!("{:x}\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(format!("\r\n0\r\n{name}:{value}\r\n\r\n").as_bytes());
    out.into()
}

/// The 501 Cloudflare R2 and some gateways answered to trailer uploads.
pub(super) fn trailers_refused() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::NotImplemented,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER not implemented",
    );
    e.set_status_code(http::StatusCode::NOT_IMPLEMENTED);
    e
}

/// A checksum value of the same form that is not `v`: its first byte flipped.
pub(super) fn wrong(v: &mut Option<String>) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(s) = v
        && let Ok(mut raw) = b64.decode(s.as_bytes())
        && let Some(first) = raw.first_mut()
    {
        *first ^= 0xff;
        *s = b64.encode(raw);
    }
}

/// The body and checksums PutObject `req` stores under faults `f`: `body` as received, or
/// aws-chunked again; its checksums dropped, or replaced by the right ones.
pub(super) fn upload(f: &FaultConfig, req: &mut S3Request<PutObjectInput>, body: Bytes) -> Bytes {
    let mut body = body;
    if f.keep_chunked && has_trailer(&req.headers) {
        body = chunked_again(&body, &req.headers, &req.input);
        req.input.content_length = Some(body.len() as i64);
    }
    req.input.body = Some(StreamingBlob::from(s3s::Body::from(body.clone())));
    if f.drop_checksums {
        let i = &mut req.input;
        (i.checksum_crc32, i.checksum_crc32c, i.checksum_crc64nvme) = (None, None, None);
        (i.checksum_sha1, i.checksum_sha256, i.checksum_algorithm) = (None, None, None);
        i.content_md5 = None;
        req.trailing_headers = None;
    }
    if f.ignore_checksums {
        // Whatever was sent, the object keeps the checksum of its bytes.
        use aws_smithy_checksums::ChecksumAlgorithm as C;
        let i = &mut req.input;
        let right = |c: C| {
            let mut h = c.into_impl();
            h.update(&body);
            String::from_utf8_lossy(h.header_value().as_bytes()).into_owned()
        };
        for (v, c) in [
            (&mut i.checksum_crc32, C::Crc32),
            (&mut i.checksum_crc32c, C::Crc32c),
            (&mut i.checksum_crc64nvme, C::Crc64Nvme),
            (&mut i.checksum_sha1, C::Sha1),
            (&mut i.checksum_sha256, C::Sha256),
        ] {
            if v.is_some() {
                *v = Some(right(c));
            }
        }
        i.content_md5 = None;
    }
    body
}
