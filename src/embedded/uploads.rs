//! The multipart half of the embedded store: s3s-fs keeps the parts, this keeps the list of
//! uploads in progress (s3s-fs does not list them) and applies the faults that break
//! multipart uploads (a lost part, refused trailers).

use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::checksums::{has_trailer, trailers_refused};
use super::faults::Op;
use super::store::Store;

/// A multipart upload created and neither completed nor aborted.
#[derive(Debug, Clone)]
pub(super) struct Upload {
    bucket: String,
    key: String,
    id: String,
    initiated: std::time::SystemTime,
}

impl Store {
    pub(super) async fn create_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.enter(Op::CreateMultipartUpload, &bucket, &key).await?;
        let out = self.fs.create_multipart_upload(req).await?;
        if let Some(id) = &out.output.upload_id {
            self.uploads.lock().unwrap().push(Upload {
                bucket,
                key,
                id: id.clone(),
                initiated: std::time::SystemTime::now(),
            });
        }
        Ok(out)
    }

    pub(super) async fn part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let f = self.enter(Op::UploadPart, &bucket, &key).await?;
        if f.refuse_trailers && has_trailer(&req.headers) {
            return Err(trailers_refused());
        }
        self.fs.upload_part(req).await
    }

    pub(super) async fn complete_upload(
        &self,
        mut req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let id = req.input.upload_id.clone();
        let f = self
            .enter(Op::CompleteMultipartUpload, &bucket, &key)
            .await?;
        if f.lose_part
            && let Some(parts) = req
                .input
                .multipart_upload
                .as_mut()
                .and_then(|m| m.parts.as_mut())
            && parts.len() > 1
        {
            parts.pop();
        }
        let _guard = self.lock_for(&bucket, &key).lock().await;
        let out = self.fs.complete_multipart_upload(req).await?;
        self.uploads.lock().unwrap().retain(|u| u.id != id);
        self.forget(&bucket, &key);
        self.replication.on_write(&self.root, &bucket, &key);
        self.queues
            .on_change(&bucket, &key, crate::s3::Change::Created, f.drops_event());
        Ok(out)
    }

    pub(super) async fn abort_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let id = req.input.upload_id.clone();
        self.enter(Op::AbortMultipartUpload, &bucket, &key).await?;
        if !self.uploads.lock().unwrap().iter().any(|u| u.id == id) {
            return Err(S3Error::with_message(
                S3ErrorCode::NoSuchUpload,
                "The specified upload does not exist.",
            ));
        }
        let out = self.fs.abort_multipart_upload(req).await?;
        self.uploads.lock().unwrap().retain(|u| u.id != id);
        Ok(out)
    }

    /// ListMultipartUploads under a prefix (one page of at most `max-uploads`, 1000 by
    /// default), oldest key first as S3 sorts them.
    pub(super) async fn list_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let bucket = req.input.bucket.clone();
        let prefix = req.input.prefix.clone().unwrap_or_default();
        self.enter(Op::ListMultipartUploads, &bucket, &prefix)
            .await?;
        let max = req.input.max_uploads.unwrap_or(1000).clamp(1, 1000) as usize;
        let mut mine: Vec<Upload> = self
            .uploads
            .lock()
            .unwrap()
            .iter()
            .filter(|u| u.bucket == bucket && u.key.starts_with(&prefix))
            .cloned()
            .collect();
        mine.sort_by(|a, b| (&a.key, a.initiated).cmp(&(&b.key, b.initiated)));
        let truncated = mine.len() > max;
        mine.truncate(max);
        let uploads = mine
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(u.key),
                upload_id: Some(u.id),
                initiated: Some(Timestamp::from(u.initiated)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(bucket),
            prefix: Some(prefix),
            is_truncated: Some(truncated),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}
