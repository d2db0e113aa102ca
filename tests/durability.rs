//! The durability set on the embedded server: seeded once, an object deleted behind the
//! daemon's back is lost (never re-created), one overwritten is corrupt, a restart recognises the
//! set without seeding it again, and `durability reseed` restores it.

pub mod common;

use std::sync::{Arc, Mutex};

use common::daemon::with_embedded_creds;
use common::{factory, target};
use s3canary::durability::{self, Monitor};
use s3canary::embedded::EmbeddedS3;
use s3canary::report::DurabilityCount as Count;
use s3canary::report::Sink;
use s3canary::report::{Outcome, Reason, TargetLabels};
use s3canary::s3::Condition;

#[derive(Default)]
struct Counted(Mutex<Vec<Count>>);

impl Sink for Counted {
    fn durability(&self, _t: &TargetLabels, c: Count) {
        self.0.lock().unwrap().push(c);
    }
}

fn reason(r: &s3canary::report::ProbeResult) -> Option<Reason> {
    match &r.outcome {
        Some(Outcome::Failure(f)) => Some(f.reason),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_set_is_seeded_once_watched_and_restored_only_by_reseed() {
    let s3 = EmbeddedS3::start(&["durable"]).await.unwrap();
    let extra = "probes = [\"put\", \"get\", \"durability\"]\n[target.durability]\nobjects = 4";
    let t = target("keeper", "durable", &s3.endpoint, extra);
    let counted = Arc::new(Counted::default());
    let bucket = factory().bucket(&t, counted.clone()).await;
    let folder = durability::folder(&t);
    let set = || -> Vec<String> {
        let mut v: Vec<String> = s3
            .keys("durable")
            .into_iter()
            .filter(|k| k.starts_with(&folder))
            .collect();
        v.sort();
        v
    };

    // Seeded once, then one object verified per cycle; a count after every four.
    let m = Monitor::new(&t, counted.clone()).unwrap();
    for _ in 0..4 {
        assert_eq!(reason(&m.check(&bucket).await), None);
    }
    assert_eq!(set().len(), 4);
    assert_eq!(
        counted.0.lock().unwrap().last(),
        Some(&Count {
            present: 4,
            lost: 0,
            corrupt: 0
        })
    );

    // Behind the daemon's back: object 1 deleted, object 2 overwritten.
    bucket.delete(&durability::key(&t, 1)).await.unwrap();
    bucket
        .put(
            &durability::key(&t, 2),
            bytes::Bytes::from_static(b"other bytes"),
            &Condition::None,
        )
        .await
        .unwrap();
    let round: Vec<Option<Reason>> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(reason(&m.check(&bucket).await));
        }
        v
    };
    assert_eq!(
        round,
        vec![
            None,
            Some(Reason::ObjectLost),
            Some(Reason::ObjectCorrupt),
            None
        ]
    );
    assert_eq!(
        counted.0.lock().unwrap().last(),
        Some(&Count {
            present: 2,
            lost: 1,
            corrupt: 1
        })
    );

    // A restart recognises the set: nothing seeded again, the lost one still lost.
    let again = Monitor::new(&t, counted.clone()).unwrap();
    assert_eq!(reason(&again.check(&bucket).await), None);
    assert_eq!(
        reason(&again.check(&bucket).await),
        Some(Reason::ObjectLost)
    );
    assert_eq!(set().len(), 3, "the lost object was not re-created");

    // The operator's command restores it.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("s3canary.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[target]]\nname = \"keeper\"\nbucket = \"durable\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\npath_style = true\n{extra}\n",
            s3.endpoint
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(common::daemon::BIN);
    cmd.args([
        "durability",
        "reseed",
        "--target",
        "keeper",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    with_embedded_creds(&mut cmd);
    let out = cmd.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("2 objects intact, 2 written again [1, 2]"),
        "{said}"
    );
    for i in 0..4 {
        durability::verify(&bucket, &t, i).await.unwrap();
    }
    assert_eq!(set().len(), 4);
}
