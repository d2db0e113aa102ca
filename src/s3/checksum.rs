//! Uploads as current SDKs send them: a full-object checksum in a header, or an aws-chunked
//! body with a trailing checksum (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`), and reads with
//! checksum mode on.

use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use aws_smithy_checksums::ChecksumAlgorithm as Calc;
use bytes::Bytes;

use super::recorder::REFUSAL_EXPECTED;
use super::{Bucket, Change, Written, error, ids_of, real_version};
use crate::report::{Failure, MAX_TOKEN, Reason, RequestIds, bounded_text};

/// A full-object checksum algorithm every current SDK offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    /// Every algorithm, in the order a config lists them by default.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64Nvme,
        Algorithm::Sha1,
        Algorithm::Sha256,
    ];

    /// Its name in a config: "crc32", "crc32c", "crc64nvme", "sha1", "sha256".
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "crc32",
            Algorithm::Crc32c => "crc32c",
            Algorithm::Crc64Nvme => "crc64nvme",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
        }
    }

    /// The algorithm named `s` in a config.
    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Its name as S3 writes it: "CRC32", "CRC64NVME", "SHA256".
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    fn sdk(self) -> ChecksumAlgorithm {
        match self {
            Algorithm::Crc32 => ChecksumAlgorithm::Crc32,
            Algorithm::Crc32c => ChecksumAlgorithm::Crc32C,
            Algorithm::Crc64Nvme => ChecksumAlgorithm::Crc64Nvme,
            Algorithm::Sha1 => ChecksumAlgorithm::Sha1,
            Algorithm::Sha256 => ChecksumAlgorithm::Sha256,
        }
    }

    fn calc(self) -> Calc {
        match self {
            Algorithm::Crc32 => Calc::Crc32,
            Algorithm::Crc32c => Calc::Crc32c,
            Algorithm::Crc64Nvme => Calc::Crc64Nvme,
            Algorithm::Sha1 => Calc::Sha1,
            Algorithm::Sha256 => Calc::Sha256,
        }
    }

    /// The checksum of `bytes` as S3 writes it in `x-amz-checksum-<name>` (base64).
    pub fn of(self, bytes: &[u8]) -> String {
        let mut c = self.calc().into_impl();
        c.update(bytes);
        String::from_utf8_lossy(c.header_value().as_bytes()).into_owned()
    }
}

/// How the checksum travels with an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// In its `x-amz-checksum-<name>` header, the body sent as it is (in-memory bodies).
    Header,
    /// As the trailer of an aws-chunked body, `x-amz-content-sha256:
    /// STREAMING-UNSIGNED-PAYLOAD-TRAILER` (streaming bodies: files, streams).
    Trailer,
}

impl Form {
    /// Both forms, in rotation order.
    pub const ALL: [Form; 2] = [Form::Header, Form::Trailer];

    /// How an upload of `a` in this form is described in a failure.
    pub fn describe(self, a: Algorithm) -> String {
        match self {
            Form::Header => format!(
                "a {} checksum in the x-amz-checksum-{} header",
                a.name(),
                a.as_str()
            ),
            Form::Trailer => format!(
                "a {} checksum as the trailer of an aws-chunked body (STREAMING-UNSIGNED-PAYLOAD-TRAILER)",
                a.name()
            ),
        }
    }
}

/// An acknowledged checksummed upload.
#[derive(Debug, Clone)]
pub struct Checksummed {
    pub written: Written,
    /// The checksum of the algorithm sent, as S3 echoed it (bounded).
    pub echoed: Option<String>,
}

/// A read with checksum mode on.
#[derive(Debug, Clone)]
pub struct ChecksumRead {
    /// The bytes read: or, when they do not match the checksum S3 sent with them, the SDK's
    /// refusal to return them (a content mismatch, in its words).
    pub body: Result<Bytes, Failure>,
    /// The checksum S3 returned for the algorithm asked about (bounded).
    pub checksum: Option<String>,
    pub etag: Option<String>,
    pub ids: RequestIds,
}

/// A checksum header's value, bounded.
fn kept(v: Option<&str>) -> Option<String> {
    v.map(|v| bounded_text(v, MAX_TOKEN))
}

impl Bucket {
    /// PutObject of `body` at `key` with `a`'s checksum sent in `form`.
    pub async fn put_checksummed(
        &self,
        key: &str,
        body: Bytes,
        a: Algorithm,
        form: Form,
    ) -> Result<Checksummed, Failure> {
        let len = body.len() as i64;
        let stream = match form {
            Form::Header => ByteStream::from(body),
            // A body the SDK cannot read ahead of time: it sends it aws-chunked, with the
            // checksum as a trailer, as it does for files and streams.
            Form::Trailer => ByteStream::from_body_1_x(http_body_util::Full::new(body)),
        };
        let req = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .content_type("application/octet-stream")
            .content_length(len)
            .checksum_algorithm(a.sdk())
            .body(stream);
        // The shared client computes checksums only where S3 requires them (the other probes
        // verify bytes themselves); this request computes it as an SDK does by default.
        let req = self.with_sse(req).customize().config_override(
            aws_sdk_s3::config::Builder::default()
                .request_checksum_calculation(RequestChecksumCalculation::WhenSupported),
        );
        let send = async {
            let (answer, sent) = self.recorded(req.send()).await;
            match answer {
                Ok(o) => Ok(Checksummed {
                    echoed: kept(returned(a, &o)),
                    written: Written {
                        etag: o.e_tag().map(str::to_string),
                        version_id: real_version(o.version_id()),
                        ids: ids_of(&o),
                    },
                }),
                Err(e) => Err(error::failure("PutObject", &e, &self.peer, sent)),
            }
        };
        self.changing(key, Change::Created, send).await
    }

    /// PutObject of `body` at `key` with `wrong` as its `a` checksum, in its header: S3 must
    /// refuse it (400 BadDigest), and that refusal is not a request error.
    pub async fn put_wrong_checksum(
        &self,
        key: &str,
        body: Bytes,
        a: Algorithm,
        wrong: &str,
    ) -> Result<Written, Failure> {
        let req = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .content_type("application/octet-stream")
            .body(ByteStream::from(body));
        let req = match a {
            Algorithm::Crc32 => req.checksum_crc32(wrong),
            Algorithm::Crc32c => req.checksum_crc32_c(wrong),
            Algorithm::Crc64Nvme => req.checksum_crc64_nvme(wrong),
            Algorithm::Sha1 => req.checksum_sha1(wrong),
            Algorithm::Sha256 => req.checksum_sha256(wrong),
        };
        let req = self.with_sse(req);
        let send = async {
            let (answer, sent) = self.recorded(req.send()).await;
            match answer {
                Ok(o) => Ok(Written {
                    etag: o.e_tag().map(str::to_string),
                    version_id: real_version(o.version_id()),
                    ids: ids_of(&o),
                }),
                Err(e) => Err(error::failure("PutObject", &e, &self.peer, sent)),
            }
        };
        let send = REFUSAL_EXPECTED.scope(error::Refusal::Digest, send);
        self.changing(key, Change::Created, send).await
    }

    /// GetObject with checksum mode on; `Ok(None)` when S3 answers 404. The SDK checks the
    /// body against the checksum S3 sent; a body that fails that check is a content mismatch.
    pub async fn get_checksummed(
        &self,
        key: &str,
        a: Algorithm,
    ) -> Result<Option<ChecksumRead>, Failure> {
        let req = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled);
        let (answer, sent) = self.recorded(req.send()).await;
        match answer {
            Ok(mut o) => {
                let ids = ids_of(&o);
                let checksum = kept(match a {
                    Algorithm::Crc32 => o.checksum_crc32(),
                    Algorithm::Crc32c => o.checksum_crc32_c(),
                    Algorithm::Crc64Nvme => o.checksum_crc64_nvme(),
                    Algorithm::Sha1 => o.checksum_sha1(),
                    Algorithm::Sha256 => o.checksum_sha256(),
                });
                let etag = o.e_tag().map(str::to_string);
                let body = match self.read_body(&mut o.body, &ids).await {
                    Err(f) if f.reason == Reason::ContentMismatch => Err(f),
                    Err(f) => return Err(f),
                    Ok(b) => Ok(b),
                };
                Ok(Some(ChecksumRead {
                    body,
                    checksum,
                    etag,
                    ids,
                }))
            }
            Err(e) if error::is_not_found(&e) => Ok(None),
            Err(e) => Err(error::failure("GetObject", &e, &self.peer, sent)),
        }
    }
}

/// The checksum of `a` a PutObject answer echoed.
fn returned(a: Algorithm, o: &aws_sdk_s3::operation::put_object::PutObjectOutput) -> Option<&str> {
    match a {
        Algorithm::Crc32 => o.checksum_crc32(),
        Algorithm::Crc32c => o.checksum_crc32_c(),
        Algorithm::Crc64Nvme => o.checksum_crc64_nvme(),
        Algorithm::Sha1 => o.checksum_sha1(),
        Algorithm::Sha256 => o.checksum_sha256(),
    }
}

#[cfg(test)]
mod tests {
    use super::Algorithm;

    /// The values S3's documentation and the SDK agree on for the same bytes.
    #[test]
    fn checksums_are_the_base64_of_the_digest() {
        assert_eq!(Algorithm::Crc32.of(b"hello world"), "DUoRhQ==");
        assert_eq!(Algorithm::Sha1.of(b""), "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.as_str()), Some(a));
            assert_ne!(a.of(b"a"), a.of(b"b"), "{a:?}");
        }
    }
}
