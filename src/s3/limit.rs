//! Bounds on what an S3 answer can make the daemon read. An endpoint the daemon does not
//! control may answer with a body of any size, or announce one in `Content-Length` and stream
//! it forever: every body is read through a limit, and `Content-Length` is never trusted.
//!
//! GetObject bodies are bounded where they are read ([`super::Bucket::get`]), by the canary's
//! size; every other body is wrapped here, before the SDK reads it to deserialize.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

/// Most bytes of an error answer's body (S3's are well under 1 KiB).
pub const MAX_ERROR_BODY: usize = 64 * 1024;
/// Most bytes of a ListObjectsV2 page: 1000 keys of up to 1 KiB with their XML.
pub const MAX_LIST_BODY: usize = 4 * 1024 * 1024;
/// Most bytes of any other answer (PutObject, HeadObject and DeleteObject have little or none).
pub const MAX_OTHER_BODY: usize = 64 * 1024;
/// Most bytes of an SQS ReceiveMessage answer: ten messages of up to 1 MiB and their JSON.
pub const MAX_RECEIVE_BODY: usize = 11 * 1024 * 1024;
/// Bytes a GetObject body may have beyond the canary's size before reading stops: a longer
/// body is already a wrong answer, the margin only lets the probe say by how much.
pub const GET_MARGIN: usize = 1024;

/// Wraps every response body but GetObject's successful one in a length limit (S3's and
/// SQS's: the events probe's client uses it too).
#[derive(Debug)]
pub(super) struct BodyLimit;

impl Intercept for BodyLimit {
    fn name(&self) -> &'static str {
        "s3canary::BodyLimit"
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg.load::<Metadata>().map(|m| m.name()).unwrap_or("");
        let cap = match (ctx.response().status().is_success(), op) {
            (false, _) => MAX_ERROR_BODY,
            (true, "GetObject") => return Ok(()),
            (true, "ListObjectsV2") => MAX_LIST_BODY,
            (true, "ReceiveMessage") => MAX_RECEIVE_BODY,
            (true, _) => MAX_OTHER_BODY,
        };
        let body = ctx.response_mut().take_body();
        *ctx.response_mut().body_mut() =
            SdkBody::from_body_1_x(http_body_util::Limited::new(body, cap));
        Ok(())
    }
}
