//! The JSON status API and the Prometheus metrics come from the same cycle reports: after a
//! daemon has run under faults, both say the same.

pub mod common;

use std::path::Path;
use std::time::Duration;

use common::{sample, wait_until};
use s3canary::app::Daemon;
use s3canary::embedded::{EmbeddedS3, FaultConfig, Lag, Rule};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_matches_the_metrics_for_the_same_moment() {
    let s3 = EmbeddedS3::start(&["alpha", "beta"]).await.unwrap();
    s3.faults
        .set_bucket("beta", FaultConfig::error("InternalError", 0.3, vec![]));
    s3.replication.set_rule(Rule::new(
        "alpha",
        "beta",
        "s3canary/replication/",
        Lag::Fixed(Duration::from_millis(300)),
    ));
    let text = format!(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\n\
         [[target]]\nname = \"alpha\"\nbucket = \"alpha\"\nregion = \"us-east-1\"\nendpoint = \"{e}\"\npath_style = true\n\
         [[target]]\nname = \"beta\"\nbucket = \"beta\"\nregion = \"eu-west-1\"\nendpoint = \"{e}\"\npath_style = true\n\
         [[replication]]\nname = \"a-to-b\"\nsource = \"alpha\"\ndestination = \"beta\"\ninterval = \"1s\"\ntimeout = \"10s\"\n",
        e = s3.endpoint
    );
    let cfg = s3canary::config::parse(&text, Path::new("t.toml")).unwrap();
    let daemon = Daemon::new(cfg, None, common::factory());
    daemon.start().await;
    // Run until both targets have several cycles and beta has failures.
    let enough = wait_until(Duration::from_secs(30), || async {
        let snap = s3canary::http::status::snapshot(&daemon);
        let runs = |t: usize| snap.targets[t].probes[0].runs_total;
        let beta_failures: u64 = snap.targets[1]
            .probes
            .iter()
            .map(|p| p.failures_total)
            .sum();
        runs(0) >= 4
            && runs(1) >= 4
            && beta_failures >= 1
            && snap.replications[0].canaries_total >= 2
    });
    assert!(enough.await, "not enough cycles ran");
    assert!(daemon.shutdown(Duration::from_secs(15)).await);

    // Stopped: nothing moves any more, so both views describe the same moment.
    let snap = s3canary::http::status::snapshot(&daemon);
    let json: serde_json::Value = serde_json::to_value(&snap).unwrap();
    daemon.refresh_gauges();
    let metrics = daemon.metrics.render();
    let mut compared = 0;
    for t in json["targets"].as_array().unwrap() {
        let target = format!("target=\"{}\"", t["name"].as_str().unwrap());
        for p in t["probes"].as_array().unwrap() {
            let probe = format!("probe=\"{}\"", p["probe"].as_str().unwrap());
            let runs = sample(&metrics, "s3canary_probe_runs_total", &[&target, &probe]).unwrap();
            assert_eq!(p["runs_total"].as_f64().unwrap(), runs, "{target} {probe}");
            let failures: f64 = metrics
                .lines()
                .filter(|l| {
                    l.starts_with("s3canary_probe_failures_total{")
                        && l.contains(&target)
                        && l.contains(&probe)
                })
                .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
                .sum();
            assert_eq!(
                p["failures_total"].as_f64().unwrap(),
                failures,
                "{target} {probe}"
            );
            let success = sample(&metrics, "s3canary_probe_success", &[&target, &probe]);
            // A probe the latest cycle did not run keeps its last real run's gauge.
            let last = match p["last_result"].as_str() {
                Some("not_run") => p["last_run_result"].as_str(),
                other => other,
            };
            match last {
                Some("success") => assert_eq!(success, Some(1.0), "{target} {probe}"),
                Some("failure") => assert_eq!(success, Some(0.0), "{target} {probe}"),
                _ => assert_eq!(success, None, "{target} {probe}"),
            }
            if let Some(ts) = p["last_success_at"].as_f64() {
                let m = sample(
                    &metrics,
                    "s3canary_last_success_timestamp_seconds",
                    &[&target, &probe],
                )
                .unwrap();
                assert!((m - ts).abs() < 1e-3, "{target} {probe}: {m} vs {ts}");
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 12);
    let r = &json["replications"][0];
    assert_eq!(r["name"], "a-to-b");
    assert_eq!(
        r["canaries_total"].as_f64(),
        sample(
            &metrics,
            "s3canary_replication_canaries_total",
            &["replication=\"a-to-b\""]
        )
    );
    assert_eq!(
        r["pending"].as_array().unwrap().len() as f64,
        sample(&metrics, "s3canary_replication_pending", &[]).unwrap()
    );
    // Failures carry the request IDs of the failed requests.
    let f = &json["targets"][1]["recent_failures"][0];
    assert_eq!(f["reason"], "server_error");
    assert!(
        f["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{f}"
    );
    assert!(
        f["extended_request_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{f}"
    );

    let html = s3canary::http::page::render(&snap);
    assert!(html.contains("FAILING") || html.contains("OK"));
    assert!(html.contains(f["request_id"].as_str().unwrap()));
    // The pair's state in words on the page, as the JSON has it, and the age of its lag.
    let state = r["state"].as_str().unwrap();
    assert!(["ok", "failing", "stalled"].contains(&state), "{r}");
    let (_, pairs) = html.split_once("<h2>Replication</h2>").unwrap();
    assert!(
        pairs.contains(&format!(">{}</span>", state.to_uppercase())),
        "{pairs}"
    );
    if let Some(age) = r["last_lag_age_seconds"].as_f64() {
        assert!(age >= 0.0 && pairs.contains(" ago)"), "{pairs}");
    }
    if !r["last_failure"].is_null() {
        assert!(pairs.contains("last failure: "), "{pairs}");
    }
}

/// During an outage the put fails and no other step runs: the status API shows those steps as
/// not run (because of the put) with their last real result's time, and their metrics stand
/// still, so alerts on them neither fire anew nor resolve on a value that is not current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_that_did_not_run_are_not_shown_as_current_and_their_metrics_stand_still() {
    let s3 = EmbeddedS3::start(&["alpha"]).await.unwrap();
    s3.faults
        .set_all(FaultConfig::profile("stale-reads").unwrap());
    let text = format!(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\nconfirm_interval = \"0s\"\n\
         [[target]]\nname = \"alpha\"\nbucket = \"alpha\"\nregion = \"us-east-1\"\nendpoint = \"{e}\"\npath_style = true\n",
        e = s3.endpoint
    );
    let cfg = s3canary::config::parse(&text, Path::new("t.toml")).unwrap();
    let daemon = Daemon::new(cfg, None, common::factory());
    daemon.start().await;
    let streak = |probe: &str| {
        let m = daemon.metrics.render();
        sample(
            &m,
            "s3canary_probe_consecutive_failures",
            &[&format!("probe=\"{probe}\"")],
        )
        .unwrap_or(0.0)
    };
    assert!(
        wait_until(Duration::from_secs(30), || async { streak("get") >= 2.0 }).await,
        "stale reads did not fail get"
    );
    s3.faults.set_all(FaultConfig::profile("outage").unwrap());
    // Two failed puts: at least one whole cycle ran no other step.
    assert!(wait_until(Duration::from_secs(30), || async { streak("put") >= 2.0 }).await);
    let get_series = || {
        let m = daemon.metrics.render();
        m.lines()
            .filter(|l| l.starts_with("s3canary_probe_") && l.contains("probe=\"get\""))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before = get_series();
    assert!(wait_until(Duration::from_secs(30), || async { streak("put") >= 3.0 }).await);
    let after = get_series();
    assert!(before.len() >= 5, "{before:?}");
    assert_eq!(before, after, "a step that did not run changed its series");
    assert!(
        after
            .iter()
            .any(|l| l.starts_with("s3canary_probe_consecutive_failures") && !l.ends_with(" 0"))
    );

    let snap = s3canary::http::status::snapshot(&daemon);
    let json: serde_json::Value = serde_json::to_value(&snap).unwrap();
    let probes = json["targets"][0]["probes"].as_array().unwrap();
    let probe = |name: &str| probes.iter().find(|p| p["probe"] == name).unwrap().clone();
    let put = probe("put");
    assert_eq!(put["last_result"], "failure");
    assert_eq!(put["last_reason"], "server_error");
    for name in ["get", "list", "overwrite", "delete", "conditional"] {
        let p = probe(name);
        assert_eq!(p["last_result"], "not_run", "{name}: {p}");
        assert_eq!(p["not_run_because"], "put", "{name}: {p}");
        let at = p["last_run_at"].as_str().unwrap_or_default();
        assert!(humantime::parse_rfc3339(at).is_ok(), "{name}: {p}");
        assert!(
            p["last_reason"].is_null() && p["failing_since"].is_null(),
            "{name}: {p}"
        );
    }
    assert_eq!(probe("get")["last_run_result"], "failure");
    let page = s3canary::http::page::render(&snap);
    assert!(
        page.contains("not run: put failed (last run failed,"),
        "{page}"
    );
    assert!(daemon.shutdown(Duration::from_secs(15)).await);
}

/// The page at a glance: a stale read says how long the stale view lasted, identical failures
/// are one entry with their count and time span, each carries its reason's hint and runbook
/// link, and once the probe passes again the entry is marked resolved and folded away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_grouped_carry_their_hint_and_are_folded_once_resolved() {
    let s3 = EmbeddedS3::start(&["alpha"]).await.unwrap();
    s3.faults.set_all(FaultConfig::profile("stale").unwrap());
    let text = format!(
        "[defaults]\ninterval = \"3s\"\ntimeout = \"2500ms\"\nconfirm_interval = \"1s\"\n\
         [[target]]\nname = \"alpha\"\nbucket = \"alpha\"\nregion = \"us-east-1\"\nendpoint = \"{e}\"\npath_style = true\n",
        e = s3.endpoint
    );
    let cfg = s3canary::config::parse(&text, Path::new("t.toml")).unwrap();
    let daemon = Daemon::new(cfg, None, common::factory());
    daemon.start().await;
    let failures = || {
        let snap = s3canary::http::status::snapshot(&daemon);
        let json = serde_json::to_value(&snap).unwrap();
        let list = json["targets"][0]["recent_failures"]
            .as_array()
            .unwrap()
            .clone();
        (s3canary::http::page::render(&snap), list)
    };

    // A stale view: the page says how long it lasted (or that it outlasted the cycle).
    let stale_seen = wait_until(Duration::from_secs(40), || async {
        failures().1.iter().any(|f| f["stale_view"].is_object())
    });
    assert!(stale_seen.await, "no stale view: {:?}", failures().1);
    let (html, list) = failures();
    let stale = list.iter().find(|f| f["stale_view"].is_object()).unwrap();
    let seconds = stale["stale_view"]["seconds"].as_f64().unwrap();
    assert!(seconds > 0.0, "{stale}");
    assert!(
        html.contains("the stale view lasted ") || html.contains("still stale after "),
        "{html}"
    );

    // An outage: every put fails the same way, folded into one entry with its count.
    s3.faults.set_all(FaultConfig::profile("outage").unwrap());
    let folded = wait_until(Duration::from_secs(40), || async {
        failures()
            .1
            .iter()
            .any(|f| f["probe"] == "put" && f["count"].as_u64() >= Some(3))
    });
    assert!(folded.await, "no folded put failures: {:?}", failures().1);
    let (html, list) = failures();
    let puts: Vec<_> = list.iter().filter(|f| f["probe"] == "put").collect();
    assert_eq!(puts.len(), 1, "identical put failures not folded: {list:?}");
    let put = puts[0];
    assert!(put["first_at"].as_f64() < put["at"].as_f64(), "{put}");
    let count = put["count"].as_u64().unwrap();
    // The count may have grown between the two reads; the page shows the one it was built on.
    assert!(
        html.contains(&format!(
            "{count}× put server_error PutObject ServiceUnavailable, "
        )),
        "{html}"
    );
    let hint = s3canary::report::Reason::ServerError.hint();
    assert!(html.contains(hint), "hint missing: {html}");
    assert!(
        html.contains("href=\"/runbook#reason-server_error\""),
        "{html}"
    );
    assert!(
        !html.contains("<details class=\"resolved\">"),
        "nothing is resolved yet"
    );

    // Recovery: the put passes again, its entry is marked resolved and folded away.
    s3.faults.set_all(FaultConfig::profile("none").unwrap());
    let resolved = wait_until(Duration::from_secs(40), || async {
        failures()
            .1
            .iter()
            .any(|f| f["probe"] == "put" && f["resolved_at"].is_number())
    });
    assert!(
        resolved.await,
        "the put failures were not resolved: {:?}",
        failures().1
    );
    let (html, _) = failures();
    let (_, folded) = html
        .split_once("<details class=\"resolved\">")
        .expect("resolved failures are folded");
    assert!(
        folded.contains("× put server_error PutObject ServiceUnavailable"),
        "{folded}"
    );
    assert!(folded.contains("✔ resolved "), "{folded}");
    assert!(daemon.shutdown(Duration::from_secs(15)).await);
}
