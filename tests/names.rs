//! What a new probe or failure reason needs is checked against their own lists: every reason
//! has a hint and a runbook section, and every CloudWatch metric the mirror publishes for the
//! probes is in the README's table (and the table names nothing it does not publish).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use s3canary::config::CloudWatchSection;
use s3canary::report::{
    CycleReport, DurabilityCount, EventKind, EventReport, PairLabels, Probe, ProbeResult, Reason,
    ReplicationEvent, Sink, TargetLabels,
};
use s3canary::sinks::cloudwatch::Mirror;
use s3canary::sinks::metrics::Metrics;

/// GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_reason_has_a_hint_and_a_runbook_section() {
    let runbook = std::fs::read_to_string("docs/runbook.md").unwrap();
    let lines: Vec<&str> = runbook.lines().collect();
    let mut hints = BTreeSet::new();
    for r in Reason::ALL {
        let hint = r.hint();
        assert!(!hint.is_empty() && hint.len() <= 160, "{r:?}: {hint}");
        assert!(hints.insert(hint), "{r:?} shares its hint");
        let link = r.runbook();
        let (file, want) = link.split_once('#').unwrap();
        assert_eq!(file, "docs/runbook.md");
        let at = lines
            .iter()
            .position(|l| l.strip_prefix("### ").is_some_and(|h| anchor(h) == want))
            .unwrap_or_else(|| panic!("no runbook section #{want} for {r:?}"));
        // The section says something before the next heading.
        let body: Vec<&&str> = lines[at + 1..]
            .iter()
            .take_while(|l| !l.starts_with('#'))
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(body.len() >= 2, "runbook section #{want} is too short");
    }
}

/// The metric names of the README's CloudWatch table, `_SuccessRate`, `_Latency` expanded.
fn readme_cloudwatch_names() -> BTreeSet<String> {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let mut names = BTreeSet::new();
    for line in readme
        .lines()
        .filter(|l| l.starts_with("| `S3Consistency_"))
    {
        let first = line.split('|').nth(1).unwrap();
        let mut base = String::new();
        for name in first.split(',').map(|n| n.trim().trim_matches('`')) {
            if let Some(suffix) = name.strip_prefix('_') {
                names.insert(format!("{base}_{suffix}"));
            } else {
                base = name
                    .rsplit_once('_')
                    .filter(|(_, s)| *s == "SuccessRate")
                    .map_or(name, |(b, _)| b)
                    .to_string();
                names.insert(name.to_string());
            }
        }
    }
    names
}

#[test]
fn every_cloudwatch_metric_of_every_probe_is_documented() {
    let metrics = Arc::new(Metrics::new(&Default::default()));
    let cfg = CloudWatchSection::default();
    let mirror = Mirror::new(cfg, metrics);
    let t = TargetLabels {
        target: "t".into(),
        bucket: "b".into(),
        region: "us-east-1".into(),
    };
    // A cycle with a passed run of every probe that reports in the cycle; events report
    // through the ledger, multipart uploads on their own time (as the daemon's loop does).
    let results = Probe::ALL
        .into_iter()
        .filter(|p| *p != Probe::Events && *p != Probe::Multipart)
        .map(|p| ProbeResult::ran(p, Ok(()), Duration::from_millis(20)))
        .collect();
    let report = CycleReport {
        target: "t".into(),
        key: "k".into(),
        started_at: SystemTime::now(),
        results,
        violations: Vec::new(),
        requests: 0,
        cleaned_up: true,
    };
    mirror.cycle(&t, &report);
    let upload = ProbeResult::ran(Probe::Multipart, Ok(()), Duration::from_secs(2));
    mirror.result(&t, "k", &upload);
    // Every target's clock skew, and the expiry of temporary credentials.
    mirror.clock_skew(&t, 2);
    let expiry = SystemTime::now() + Duration::from_secs(3600);
    mirror.credentials(&t, Some(expiry), 0);
    let kind = EventKind::ObjectCreated;
    mirror.event(&t, &EventReport::Expected(kind));
    let after = Duration::from_secs(1);
    mirror.event(
        &t,
        &EventReport::Delivered {
            kind,
            after,
            key: "k".into(),
        },
    );
    mirror.durability(
        &t,
        DurabilityCount {
            present: 3,
            lost: 0,
            corrupt: 0,
        },
    );
    let pair = PairLabels(["p", "src", "eu-west-1", "dst", "us-east-1"].map(String::from));
    mirror.replication(&pair, ReplicationEvent::Replicated(Duration::from_secs(4)));
    mirror.replication_pending(&pair, 0, Duration::ZERO);
    assert!(mirror.flush(SystemTime::now()) > 0);

    let published: BTreeSet<String> = mirror
        .queued()
        .iter()
        .filter_map(|d| d.metric_name().map(str::to_string))
        .collect();
    let documented = readme_cloudwatch_names();
    let undocumented: Vec<_> = published.difference(&documented).collect();
    let unpublished: Vec<_> = documented.difference(&published).collect();
    assert!(
        undocumented.is_empty(),
        "published, not in the README: {undocumented:?}"
    );
    assert!(
        unpublished.is_empty(),
        "in the README, never published: {unpublished:?}"
    );
    // One check name per probe: no two probes share a metric.
    let checks: BTreeSet<_> = Probe::ALL
        .into_iter()
        .map(s3canary::sinks::cloudwatch::check_name)
        .collect();
    assert_eq!(checks.len(), Probe::ALL.len());
}
