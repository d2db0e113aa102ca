//! The daemon's promise on production buckets: it never touches a key outside its prefix, and
//! the orphan sweep deletes only its own old canaries.

pub mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use common::rig;
use s3canary::canary::sweep_orphans;
use s3canary::embedded::{FaultConfig, Op};

async fn put(r: &common::Rig, key: &str) {
    r.bucket
        .client
        .put_object()
        .bucket("canary")
        .key(key)
        .body(ByteStream::from_static(b"not the daemon's"))
        .send()
        .await
        .unwrap();
}

fn ms_ago(d: Duration) -> u128 {
    (SystemTime::now() - d)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[tokio::test]
async fn the_sweep_deletes_only_old_canaries_of_its_own_target() {
    let r = rig("orphan_ttl = \"1h\"").await;
    let old = ms_ago(Duration::from_secs(2 * 3600));
    let young = ms_ago(Duration::from_secs(60));
    let orphan = format!("s3canary/t1/{old:013}-0123456789abcdef");
    let keep = [
        "s3canary/t1/important.txt".to_string(),
        format!("s3canary/t1/{old:013}-0123456789abcdef.bak"),
        format!("s3canary/t1/{old:013}-0123456789ABCDEF"),
        format!("s3canary/t1/{young:013}-0123456789abcdef"),
        format!("s3canary/t2/{old:013}-0123456789abcdef"),
        format!("s3canary/{old:013}-0123456789abcdef"),
        format!("other/{old:013}-0123456789abcdef"),
        "users/alice.json".to_string(),
    ];
    put(&r, &orphan).await;
    for k in &keep {
        put(&r, k).await;
    }
    let first_access = r.s3.log.entries().len();

    let deleted = sweep_orphans(&r.bucket, &r.target, SystemTime::now())
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let mut want: Vec<String> = keep.to_vec();
    want.sort();
    assert_eq!(r.s3.keys("canary"), want);
    // The sweep itself listed and deleted only under the target's canary prefix.
    for a in &r.s3.log.entries()[first_access..] {
        assert!(a.key.starts_with("s3canary/t1/"), "{a:?}");
        if a.op == Op::DeleteObject {
            assert_eq!(a.key, orphan);
        }
    }
}

#[tokio::test]
async fn cycles_under_faults_never_touch_a_key_outside_the_prefix() {
    let r = rig("timeout = \"3s\"").await;
    let foreign = ["s3canary-other/x", "s3canary/t1x/y", "data/z"];
    for k in foreign {
        put(&r, k).await;
    }
    let first_access = r.s3.log.entries().len();
    let ms = Duration::from_millis;
    let profiles = [
        FaultConfig::default(),
        FaultConfig {
            stale_after_overwrite: ms(200),
            list_lag: ms(100),
            ..Default::default()
        },
        FaultConfig {
            read_after_delete: ms(150),
            ignore_conditional: true,
            ..Default::default()
        },
        FaultConfig::error("InternalError", 0.3, vec![]),
    ];
    for f in profiles {
        r.s3.faults.set_all(f);
        common::one_cycle(&r.bucket, &r.target).await;
    }
    r.s3.faults.clear();
    let log = r.s3.log.entries();
    assert!(log.len() - first_access > 40);
    for a in &log[first_access..] {
        assert!(
            a.key.starts_with("s3canary/t1/"),
            "outside the prefix: {a:?}"
        );
    }
    // Injected errors may have failed a cleanup; only canaries may remain, never fewer foreign keys.
    let left = r.s3.keys("canary");
    for k in foreign {
        assert!(left.contains(&k.to_string()));
    }
    for k in left.iter().filter(|k| !foreign.contains(&k.as_str())) {
        assert!(
            s3canary::canary::parse_key("s3canary/t1/", k).is_some(),
            "{k}"
        );
    }
}
