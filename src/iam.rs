//! The least-privilege IAM policy a config needs (`iam-policy`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::config::{Config, Sse};
use crate::report::Probe;

fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The least-privilege IAM policy for `cfg`: object access under each target's prefix, listing
/// limited to that prefix, and only what SSE-KMS, assumed roles, the multipart probe and the
/// CloudWatch mirror need.
pub fn policy(cfg: &Config) -> Value {
    let mut objects = Vec::new();
    // The multipart probe's targets: aborting its uploads under the prefix, listing uploads.
    let (mut aborts, mut upload_lists) = (Vec::new(), Vec::new());
    let mut lists: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut kms = Vec::new();
    let mut roles = Vec::new();
    let mut queues = Vec::new();
    for t in &cfg.targets {
        if let Some(e) = &t.events {
            // A queue behind a custom endpoint has no ARN to name: any queue of its name.
            queues.push(e.queue_arn().unwrap_or_else(|| {
                format!(
                    "arn:{}:sqs:{}:*:{}",
                    partition(&t.region),
                    t.region,
                    e.queue_name()
                )
            }));
        }
        let part = partition(&t.region);
        objects.push(format!("arn:{part}:s3:::{}/{}*", t.bucket, t.prefix));
        let e = lists
            .entry(t.bucket.clone())
            .or_insert_with(|| (format!("arn:{part}:s3:::{}", t.bucket), Vec::new()));
        e.1.push(format!("{}*", t.prefix));
        if t.runs(Probe::Multipart) {
            aborts.push(format!("arn:{part}:s3:::{}/{}*", t.bucket, t.prefix));
            upload_lists.push(format!("arn:{part}:s3:::{}", t.bucket));
        }
        if let Some(Sse::Kms { key_id }) = &t.sse {
            kms.push(match key_id {
                Some(k) if k.starts_with("arn:") => k.clone(),
                _ => format!("arn:{part}:kms:{}:*:key/*", t.region),
            });
        }
        if let Some(r) = &t.role_arn {
            roles.push(r.clone());
        }
    }
    for v in [
        &mut objects,
        &mut kms,
        &mut roles,
        &mut queues,
        &mut aborts,
        &mut upload_lists,
    ] {
        v.sort();
        v.dedup();
    }
    let mut statements = vec![json!({
        "Sid": "S3canaryObjects",
        "Effect": "Allow",
        "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:PutObject"],
        "Resource": objects,
    })];
    for (bucket, (arn, mut prefixes)) in lists {
        prefixes.sort();
        prefixes.dedup();
        let sid: String = bucket.chars().filter(char::is_ascii_alphanumeric).collect();
        statements.push(json!({
            "Sid": format!("S3canaryList{sid}"),
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": arn,
            "Condition": {"StringLike": {"s3:prefix": prefixes}},
        }));
    }
    if !aborts.is_empty() {
        // Create, UploadPart and Complete are s3:PutObject. ListBucketMultipartUploads takes no
        // s3:prefix condition in IAM: the daemon lists only under its prefix and aborts only its
        // own canaries' uploads.
        statements.push(json!({
            "Sid": "S3canaryMultipartAbort",
            "Effect": "Allow",
            "Action": "s3:AbortMultipartUpload",
            "Resource": aborts,
        }));
        statements.push(json!({
            "Sid": "S3canaryMultipartList",
            "Effect": "Allow",
            "Action": "s3:ListBucketMultipartUploads",
            "Resource": upload_lists,
        }));
    }
    if !kms.is_empty() {
        statements.push(json!({
            "Sid": "S3canaryKms",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": kms,
        }));
    }
    if !queues.is_empty() {
        statements.push(json!({
            "Sid": "S3canaryEventsQueue",
            "Effect": "Allow",
            "Action": [
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage"
            ],
            "Resource": queues,
        }));
    }
    if !roles.is_empty() {
        statements.push(json!({
            "Sid": "S3canaryAssumeRole",
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": roles,
        }));
    }
    if cfg.cloudwatch.enabled {
        statements.push(json!({
            "Sid": "S3canaryCloudWatch",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": cfg.cloudwatch.namespace}},
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}
