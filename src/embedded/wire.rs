//! The HTTP exchange under s3s: which operation a request is (for the fault layer, before
//! s3s parses it), the answers the fault layer gives itself (a 200 with an `<Error>` body),
//! and the embedded SQS queue's answers.

use super::faults::Op;
use super::queue;

/// `200 OK` with S3's `<Error>` body, as S3 answers a CompleteMultipartUpload that failed after
/// the status was sent.
pub(super) fn error_in_200(n: u64) -> http::Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>\
         <Message>We encountered an internal error. Please try again.</Message>\
         <RequestId>{n:016X}</RequestId></Error>"
    );
    http::Response::builder()
        .status(200)
        .header("content-type", "application/xml")
        .header("x-amz-request-id", format!("{n:016X}"))
        .body(s3s::Body::from(body))
        .expect("a valid response")
}

/// Answers an SQS request of the embedded queues (its body read up to 1 MiB).
pub(super) async fn queue_answer(
    queues: &queue::Queues,
    target: &str,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<s3s::Body> {
    let body =
        http_body_util::BodyExt::collect(http_body_util::Limited::new(req.into_body(), 1 << 20))
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
    let (status, json) = queues.handle(target, &body).await;
    http::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header(
            "x-amzn-requestid",
            format!("{:016x}", rand::random::<u64>()),
        )
        .body(s3s::Body::from(json))
        .expect("a valid response")
}

pub(super) fn classify<B>(req: &http::Request<B>) -> (String, Op) {
    let path = req.uri().path().trim_start_matches('/');
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let query = req.uri().query().unwrap_or("");
    let has = |name: &str| {
        query
            .split('&')
            .any(|kv| kv.split_once('=').map_or(kv, |(k, _)| k) == name)
    };
    let object = !key.is_empty();
    let op = match *req.method() {
        http::Method::PUT if object && has("uploadId") => Op::UploadPart,
        http::Method::PUT if object => Op::PutObject,
        http::Method::POST if object && has("uploads") => Op::CreateMultipartUpload,
        http::Method::POST if object && has("uploadId") => Op::CompleteMultipartUpload,
        http::Method::DELETE if object && has("uploadId") => Op::AbortMultipartUpload,
        http::Method::GET if !object && has("uploads") => Op::ListMultipartUploads,
        http::Method::GET if !object && query.contains("list-type=2") => Op::ListObjectsV2,
        http::Method::GET if object => Op::GetObject,
        http::Method::HEAD if object => Op::HeadObject,
        http::Method::DELETE if object => Op::DeleteObject,
        _ => Op::Other,
    };
    (bucket.to_string(), op)
}
