//! `run --shard I/N`: three daemons on one config split its targets. Each target is probed by
//! exactly one of them, targets that share an events queue land on the same shard (one
//! consumer a queue), a replication pair runs on its source's shard, and the status API says
//! which shard a process is and how many targets it owns.

pub mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::{total, wait_until};
use s3canary::app::Daemon;
use s3canary::embedded::queue::NotifyRule;
use s3canary::embedded::{EmbeddedS3, Lag, Rule};
use s3canary::shard::Shard;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_probe_every_target_exactly_once() {
    let s3 = EmbeddedS3::start(&["shared", "copy"]).await.unwrap();
    let e = &s3.endpoint;
    s3.queues.notify(NotifyRule {
        bucket: "shared".into(),
        prefix: "s3canary/".into(),
        queue: "events".into(),
        delay: Lag::Fixed(Duration::from_millis(50)),
    });
    s3.replication.set_rule(Rule::new(
        "shared",
        "copy",
        "s3canary/replication/",
        Lag::Fixed(Duration::from_millis(100)),
    ));
    let mut text = "[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\n".to_string();
    let plain: Vec<String> = (0..9).map(|i| format!("t{i}")).collect();
    for name in &plain {
        text += &format!(
            "[[target]]\nname = \"{name}\"\nbucket = \"shared\"\nregion = \"us-east-1\"\n\
             endpoint = \"{e}\"\npath_style = true\nprobes = [\"put\", \"get\"]\n"
        );
    }
    // Two targets on one queue: one process must consume it.
    for name in ["q1", "q2"] {
        text += &format!(
            "[[target]]\nname = \"{name}\"\nbucket = \"shared\"\nregion = \"us-east-1\"\n\
             endpoint = \"{e}\"\npath_style = true\nprobes = [\"put\", \"get\", \"events\"]\n\
             [target.events]\nqueue_url = \"{e}/000000000000/events\"\nendpoint = \"{e}\"\n"
        );
    }
    text += &format!(
        "[[target]]\nname = \"dst\"\nbucket = \"copy\"\nregion = \"us-east-1\"\n\
         endpoint = \"{e}\"\npath_style = true\nprobes = [\"put\"]\n\
         [[replication]]\nname = \"t0-to-dst\"\nsource = \"t0\"\ndestination = \"dst\"\n\
         interval = \"1s\"\ntimeout = \"10s\"\n"
    );
    let cfg = s3canary::config::parse(&text, Path::new("t.toml")).unwrap();
    let all: BTreeSet<String> = cfg.targets.iter().map(|t| t.name.clone()).collect();

    let daemons: Vec<_> = (0..3)
        .map(|i| {
            let shard = Shard { index: i, count: 3 };
            Daemon::sharded(cfg.clone(), None, common::factory(), shard)
        })
        .collect();
    for d in &daemons {
        d.start().await;
    }
    let owned: Vec<BTreeSet<String>> = daemons
        .iter()
        .map(|d| {
            let snap = s3canary::http::status::snapshot(d);
            snap.targets.iter().map(|t| t.name.clone()).collect()
        })
        .collect();
    // Every owned target completes cycles on its shard (the put step of each has run).
    let ran = wait_until(Duration::from_secs(60), || async {
        daemons.iter().zip(&owned).all(|(d, mine)| {
            let text = d.metrics.render();
            mine.iter().all(|t| {
                let target = format!("target=\"{t}\"");
                total(
                    &text,
                    "s3canary_probe_runs_total",
                    &[&target, "probe=\"put\""],
                ) >= 2.0
            })
        })
    });
    assert!(ran.await, "every shard's targets ran");
    let replicated = wait_until(Duration::from_secs(30), || async {
        daemons.iter().any(|d| {
            total(
                &d.metrics.render(),
                "s3canary_replication_canaries_total",
                &[],
            ) >= 1.0
        })
    });
    assert!(replicated.await, "the replication pair ran somewhere");
    for d in &daemons {
        assert!(d.shutdown(Duration::from_secs(15)).await);
    }

    // Exactly one owner each, and the split is the hashing's.
    let mut union = BTreeSet::new();
    for (i, mine) in owned.iter().enumerate() {
        for t in mine {
            assert!(union.insert(t.clone()), "{t} is on two shards");
            let target = cfg.targets.iter().find(|c| &c.name == t).unwrap();
            let key = s3canary::shard::ownership_key(target);
            assert_eq!(Shard::owner(&key, 3), i as u32, "{t}");
        }
    }
    assert_eq!(union, all);
    let q_shard = owned.iter().position(|m| m.contains("q1")).unwrap();
    assert!(
        owned[q_shard].contains("q2"),
        "targets on one queue share a shard"
    );

    // A shard's series are only its own targets', and the pair runs where t0 runs.
    for (i, d) in daemons.iter().enumerate() {
        let text = d.metrics.render();
        for t in &all {
            let target = format!("target=\"{t}\"");
            let runs = total(&text, "s3canary_probe_runs_total", &[&target]);
            assert_eq!(
                runs > 0.0,
                owned[i].contains(t),
                "shard {i}, {t}: {runs} runs"
            );
        }
        let pair = total(&text, "s3canary_replication_canaries_total", &[]);
        assert_eq!(
            pair > 0.0,
            owned[i].contains("t0"),
            "shard {i}: {pair} canaries"
        );

        let snap = serde_json::to_value(s3canary::http::status::snapshot(d)).unwrap();
        assert_eq!(snap["shard"]["index"], i);
        assert_eq!(snap["shard"]["count"], 3);
        assert_eq!(snap["shard"]["targets"], owned[i].len());
        assert_eq!(snap["shard"]["configured_targets"], all.len());
    }
    // Nothing is left behind by any shard (each cleaned up its own canaries).
    let left: Vec<String> = s3
        .keys("shared")
        .into_iter()
        .filter(|k| !k.starts_with("s3canary/replication/"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
