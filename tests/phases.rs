//! Where an attempt's time goes, measured by the client's own connector against the embedded S3
//! server over real TCP: a slow store shows in the first byte and nowhere else, a reused
//! connection shows no connect, and each attempt's phases come with S3's request ID. Delays of
//! the TCP handshake itself are tested in a network namespace (tests/network/phases_test.py).

pub mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{cycle, rig, sample};
use s3canary::embedded::FaultConfig;
use s3canary::report::{Outcome, RequestPhases, Sink, TargetLabels};

#[tokio::test]
async fn a_slow_store_shows_in_the_first_byte_and_not_in_connect() {
    let r = rig("timeout = \"10s\"").await;
    let delay = Duration::from_millis(300);
    r.s3.faults.set_all(FaultConfig {
        latency: delay,
        ..Default::default()
    });
    let report = cycle(&r).await;
    assert!(
        report
            .results
            .iter()
            .all(|p| matches!(p.outcome, Some(Outcome::Success))),
        "{report:?}"
    );
    let text = r.metrics.render();
    let phase = |p: &str, what: &str| {
        let p = format!("phase=\"{p}\"");
        sample(
            &text,
            &format!("s3canary_request_phase_seconds_{what}"),
            &["target=\"t1\"", &p],
        )
        .unwrap_or(0.0)
    };
    // Every request waited at least the store's delay for its answer's head...
    let answers = phase("first_byte", "count");
    assert_eq!(answers, report.requests as f64);
    assert!(
        phase("first_byte", "sum") >= answers * delay.as_secs_f64(),
        "first byte {} s for {answers} answers delayed {delay:?} each",
        phase("first_byte", "sum")
    );
    // ...while opening the one connection did not wait for the store at all (a TCP handshake
    // on loopback is the kernel's, however busy the store is).
    assert_eq!(phase("connect", "count"), 1.0);
    assert!(
        phase("connect", "sum") < delay.as_secs_f64(),
        "connect took {} s",
        phase("connect", "sum")
    );
}

/// Keeps every attempt's phases.
#[derive(Default)]
struct Phases(Mutex<Vec<RequestPhases>>);

impl Sink for Phases {
    fn request_phases(&self, _t: &TargetLabels, p: &RequestPhases) {
        self.0.lock().unwrap().push(p.clone());
    }
}

#[tokio::test]
async fn each_attempt_reports_its_phases_once_with_the_request_id_the_store_logged() {
    let s3 = s3canary::embedded::EmbeddedS3::start(&["canary"])
        .await
        .unwrap();
    let t = common::target("t1", "canary", &s3.endpoint, "");
    let seen = Arc::new(Phases::default());
    let bucket = common::factory().bucket(&t, seen.clone()).await;
    let report = common::one_cycle(&bucket, &t).await;
    assert!(report.cleaned_up);
    let phases = seen.0.lock().unwrap().clone();
    // One report per request the server answered, none lost or doubled.
    assert_eq!(phases.len(), s3.answered.ids().len());
    assert_eq!(phases.len(), report.requests as usize);
    // The first opened the connection; the others reused it and have no connect of their own.
    assert!(phases[0].new_connection && phases[0].connect.is_some());
    for p in &phases[1..] {
        assert!(!p.new_connection, "{p:?}");
        assert_eq!((p.dns, p.connect, p.tls), (None, None, None), "{p:?}");
    }
    // Plain http to an address: no name resolved, no TLS.
    assert!(phases.iter().all(|p| p.dns.is_none() && p.tls.is_none()));
    // Every answer's request ID is one the server sent, in the order it answered them.
    let sent: Vec<Option<String>> = s3.answered.ids().into_iter().map(Some).collect();
    let reported: Vec<Option<String>> = phases.iter().map(|p| p.request_id.clone()).collect();
    assert_eq!(reported, sent);
}
