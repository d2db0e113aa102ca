//! What an SQS message about S3 says: the bucket, key and kind of each change, from an S3 event
//! notification (directly or wrapped by SNS) or an EventBridge event, or that it is S3's test
//! event. Anything else is not ours to read.

use serde::Deserialize;

use crate::s3::Change;

/// Longest message body read; SQS allows 1 MiB, an S3 notification is about 1 KiB.
pub const MAX_BODY: usize = 1 << 20;

/// One change a message reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub bucket: String,
    pub key: String,
    /// None for other S3 events (tagging, ACL, restore, lifecycle transitions).
    pub change: Option<Change>,
}

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Changes of objects (S3 records or an EventBridge event).
    Changes(Vec<Notice>),
    /// `s3:TestEvent`, sent when a bucket's notification configuration is saved.
    Test { bucket: String },
    /// Something else: not an S3 event we can read.
    Other,
}

#[derive(Deserialize)]
struct Records {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName")]
    event_name: String,
    s3: RecordS3,
}

#[derive(Deserialize)]
struct RecordS3 {
    bucket: Named,
    object: Keyed,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Keyed {
    key: String,
}

#[derive(Deserialize)]
struct TestEvent {
    #[serde(rename = "Event")]
    event: String,
    #[serde(rename = "Bucket")]
    bucket: String,
}

#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
}

#[derive(Deserialize)]
struct BridgeEvent {
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: BridgeDetail,
}

#[derive(Deserialize)]
struct BridgeDetail {
    bucket: Named,
    object: Keyed,
}

/// The change an S3 event name (`ObjectCreated:Put`) or EventBridge detail type (`Object
/// Created`) stands for.
fn change_of(name: &str) -> Option<Change> {
    if name.starts_with("ObjectCreated") || name == "Object Created" {
        Some(Change::Created)
    } else if name.starts_with("ObjectRemoved") || name == "Object Deleted" {
        Some(Change::Removed)
    } else {
        None
    }
}

/// Decodes a key as S3 notifications write it (URL-encoded, `+` for a space). Canary keys
/// have neither `%` nor `+`, so decoding an already plain key changes nothing.
pub fn decode_key(key: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', h, l]) => hex(*h).zip(hex(*l)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a message body.
pub fn parse(body: &str) -> Message {
    if body.len() > MAX_BODY {
        return Message::Other;
    }
    if let Ok(r) = serde_json::from_str::<Records>(body) {
        let notices = r
            .records
            .into_iter()
            .map(|rec| Notice {
                change: change_of(&rec.event_name),
                bucket: rec.s3.bucket.name,
                key: decode_key(&rec.s3.object.key),
            })
            .collect::<Vec<_>>();
        return if notices.is_empty() {
            Message::Other
        } else {
            Message::Changes(notices)
        };
    }
    if let Ok(t) = serde_json::from_str::<TestEvent>(body)
        && t.event == "s3:TestEvent"
    {
        return Message::Test { bucket: t.bucket };
    }
    if let Ok(e) = serde_json::from_str::<BridgeEvent>(body)
        && e.source == "aws.s3"
    {
        return Message::Changes(vec![Notice {
            bucket: e.detail.bucket.name,
            key: decode_key(&e.detail.object.key),
            change: change_of(&e.detail_type),
        }]);
    }
    if let Ok(env) = serde_json::from_str::<SnsEnvelope>(body)
        && env.kind == "Notification"
        && env.message.len() < body.len()
    {
        return parse(&env.message);
    }
    Message::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_s3_records_with_url_encoded_keys() {
        let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"s3canary%2Fprimary%2F1795-ab","size":1024,"eTag":"x"}}},
            {"eventName":"ObjectRemoved:DeleteMarkerCreated","s3":{"bucket":{"name":"b"},"object":{"key":"a+b%20c"}}}]}"#;
        assert_eq!(
            parse(body),
            Message::Changes(vec![
                Notice {
                    bucket: "b".into(),
                    key: "s3canary/primary/1795-ab".into(),
                    change: Some(Change::Created)
                },
                Notice {
                    bucket: "b".into(),
                    key: "a b c".into(),
                    change: Some(Change::Removed)
                },
            ])
        );
    }

    #[test]
    fn reads_eventbridge_events_test_events_and_sns_envelopes() {
        let bridge = r#"{"version":"0","id":"1","detail-type":"Object Deleted","source":"aws.s3","detail":{"bucket":{"name":"b"},"object":{"key":"s3canary/p/1-a"},"reason":"DeleteObject"}}"#;
        assert_eq!(
            parse(bridge),
            Message::Changes(vec![Notice {
                bucket: "b".into(),
                key: "s3canary/p/1-a".into(),
                change: Some(Change::Removed)
            }])
        );
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-24T00:00:00Z","Bucket":"b","RequestId":"r","HostId":"h"}"#;
        assert_eq!(parse(test), Message::Test { bucket: "b".into() });
        let inner = r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        let sns = serde_json::json!({"Type": "Notification", "Message": inner}).to_string();
        assert!(matches!(parse(&sns), Message::Changes(n) if n[0].key == "k"));
        assert_eq!(parse("not json"), Message::Other);
        assert_eq!(parse(r#"{"Records":[]}"#), Message::Other);
        assert_eq!(parse(&"x".repeat(MAX_BODY + 1)), Message::Other);
    }

    #[test]
    fn other_s3_events_are_read_without_a_change() {
        let body = r#"{"Records":[{"eventName":"ObjectTagging:Put","s3":{"bucket":{"name":"b"},"object":{"key":"s3canary/t/1-a"}}}]}"#;
        assert_eq!(
            parse(body),
            Message::Changes(vec![Notice {
                bucket: "b".into(),
                key: "s3canary/t/1-a".into(),
                change: None
            }])
        );
    }

    #[test]
    fn decoding_leaves_bad_escapes_alone() {
        assert_eq!(decode_key("100%"), "100%");
        assert_eq!(decode_key("a%zzb"), "a%zzb");
        assert_eq!(decode_key("%41"), "A");
        assert_eq!(decode_key("%é"), "%é");
    }
}
