//! The multipart operations the multipart probe and its sweep use: create, upload a part,
//! complete, abort, list uploads, and a ranged read.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

use super::{Bucket, Change, Written, error, ids_of, real_version};
use crate::report::{Failure, MAX_TOKEN, Reason, RequestIds, bounded_text};

/// An upload in progress, as ListMultipartUploads answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
}

/// One page of ListMultipartUploads.
#[derive(Debug, Clone)]
pub struct UploadPage {
    pub uploads: Vec<Upload>,
    /// Where the next page starts (key and upload id markers), when the answer was truncated.
    pub next: Option<(String, String)>,
}

/// A ranged GetObject's answer.
#[derive(Debug, Clone)]
pub struct RangeRead {
    pub body: Bytes,
    /// The object's size, from `Content-Range: bytes a-b/<size>`.
    pub total: Option<u64>,
    pub etag: Option<String>,
    pub ids: RequestIds,
}

/// Longest upload id or part ETag sent back to the store: S3's upload ids are about 128
/// bytes; one past this is refused rather than cut, since a changed id names no upload.
pub const MAX_ECHOED: usize = 1024;

/// A part's ETag or an upload id as the store gave it, to be sent back unchanged; None when
/// missing, empty, longer than [`MAX_ECHOED`] or not printable ASCII (it goes into a header,
/// an XML body and the log).
fn echoable(v: Option<&str>) -> Option<String> {
    v.filter(|v| !v.is_empty() && v.len() <= MAX_ECHOED && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
}

impl Bucket {
    /// CreateMultipartUpload of `key` (with the target's server-side encryption); the upload id.
    pub async fn create_multipart(&self, key: &str) -> Result<(String, RequestIds), Failure> {
        let req = self
            .client
            .create_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .content_type("application/octet-stream");
        let req = super::with_sse!(req, &self.sse);
        let (answer, sent) = self.recorded(req.send()).await;
        match answer {
            Ok(o) => {
                let ids = ids_of(&o);
                match echoable(o.upload_id()) {
                    Some(id) => Ok((id, ids)),
                    None => Err(Failure::wrong_answer(
                        Reason::Other,
                        "CreateMultipartUpload",
                        &ids,
                        format!(
                            "CreateMultipartUpload answered without a usable upload id (missing, over {MAX_ECHOED} bytes or not printable)"
                        ),
                    )),
                }
            }
            Err(e) => Err(error::failure(
                "CreateMultipartUpload",
                &e,
                &self.peer,
                sent,
            )),
        }
    }

    /// UploadPart `number` of upload `id`; the part's ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        id: &str,
        number: i32,
        body: Bytes,
    ) -> Result<String, Failure> {
        let req = self
            .client
            .upload_part()
            .bucket(&self.name)
            .key(key)
            .upload_id(id)
            .part_number(number)
            .content_length(body.len() as i64)
            .body(ByteStream::from(body));
        let (answer, sent) = self.recorded(req.send()).await;
        match answer {
            Ok(o) => echoable(o.e_tag()).ok_or_else(|| {
                Failure::wrong_answer(
                    Reason::Other,
                    "UploadPart",
                    &ids_of(&o),
                    format!(
                        "UploadPart {number} answered without a usable ETag (missing, over {MAX_ECHOED} bytes or not printable)"
                    ),
                )
            }),
            Err(e) => Err(error::failure("UploadPart", &e, &self.peer, sent)),
        }
    }

    /// CompleteMultipartUpload of upload `id` from `parts` (number, ETag). A 200 whose body is
    /// an `<Error>` is a failure with that error's code (the SDK reads it as one).
    pub async fn complete_multipart(
        &self,
        key: &str,
        id: &str,
        parts: &[(i32, String)],
    ) -> Result<Written, Failure> {
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|(n, etag)| CompletedPart::builder().part_number(*n).e_tag(etag).build())
                    .collect(),
            ))
            .build();
        let req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .upload_id(id)
            .multipart_upload(done);
        let send = async {
            let (answer, sent) = self.recorded(req.send()).await;
            match answer {
                Ok(o) => Ok(Written {
                    etag: o.e_tag().map(|e| bounded_text(e, MAX_TOKEN)),
                    version_id: real_version(o.version_id()),
                    ids: ids_of(&o),
                }),
                Err(e) => {
                    let mut f = error::failure("CompleteMultipartUpload", &e, &self.peer, sent);
                    if f.status == Some(200) {
                        f.message = format!(
                            "answered 200 OK with an error in its body (the upload failed after the status was sent): {}",
                            f.message
                        );
                    }
                    Err(f)
                }
            }
        };
        self.changing(key, Change::Created, send).await
    }

    /// AbortMultipartUpload of upload `id`; an upload that no longer exists (404 NoSuchUpload)
    /// is already gone.
    pub async fn abort_multipart(&self, key: &str, id: &str) -> Result<(), Failure> {
        let req = self
            .client
            .abort_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .upload_id(id);
        let (answer, sent) = self.recorded(req.send()).await;
        match answer {
            Ok(_) => Ok(()),
            Err(e) if error::is_not_found(&e) => Ok(()),
            Err(e) => Err(error::failure("AbortMultipartUpload", &e, &self.peer, sent)),
        }
    }

    /// One page of ListMultipartUploads under `prefix`, from `after` (key and upload id
    /// markers of the page before).
    pub async fn list_uploads(
        &self,
        prefix: &str,
        after: Option<&(String, String)>,
    ) -> Result<UploadPage, Failure> {
        let mut req = self
            .client
            .list_multipart_uploads()
            .bucket(&self.name)
            .prefix(prefix);
        if let Some((key, id)) = after {
            req = req.key_marker(key).upload_id_marker(id);
        }
        let (answer, sent) = self.recorded(req.send()).await;
        match answer {
            Ok(o) => {
                let uploads = o
                    .uploads()
                    .iter()
                    .filter_map(|u| {
                        Some(Upload {
                            key: u.key()?.to_string(),
                            upload_id: echoable(u.upload_id())?,
                        })
                    })
                    .collect();
                let next = match (
                    o.is_truncated(),
                    o.next_key_marker(),
                    o.next_upload_id_marker(),
                ) {
                    (Some(true), Some(k), Some(i)) if !k.is_empty() => {
                        Some((k.to_string(), i.to_string()))
                    }
                    _ => None,
                };
                Ok(UploadPage { uploads, next })
            }
            Err(e) => Err(error::failure("ListMultipartUploads", &e, &self.peer, sent)),
        }
    }

    /// GetObject of bytes `first..=last` of `key`; `Ok(None)` when S3 answers 404. At most
    /// the range's length is read.
    pub async fn get_range(
        &self,
        key: &str,
        first: u64,
        last: u64,
    ) -> Result<Option<RangeRead>, Failure> {
        let req = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .range(format!("bytes={first}-{last}"));
        let (answer, sent) = self.recorded(req.send()).await;
        match answer {
            Ok(mut o) => {
                let ids = ids_of(&o);
                let total = o
                    .content_range()
                    .and_then(|r| r.rsplit_once('/'))
                    .and_then(|(_, n)| n.parse().ok());
                let etag = o.e_tag().map(str::to_string);
                let max = (last - first + 1) as usize;
                let body = self.read_at_most(&mut o.body, &ids, max).await?;
                Ok(Some(RangeRead {
                    body,
                    total,
                    etag,
                    ids,
                }))
            }
            Err(e) if error::is_not_found(&e) => Ok(None),
            Err(e) => Err(error::failure("GetObject", &e, &self.peer, sent)),
        }
    }
}
