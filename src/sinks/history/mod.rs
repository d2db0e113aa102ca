//! Recent results per target and probe, for the status page (`/`) and `/api/v1/status`: the
//! last result, since when it fails, success ratio and latency over a recent window, and the
//! last failures with what AWS support asks for.
//!
//! The [`History`] is a [`Sink`] fed by the same cycle reports as the Prometheus metrics, so the
//! page and `/metrics` never disagree.

use std::collections::{HashMap, VecDeque};
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

mod failures;
use failures::Recent;
pub use failures::{FailureRecord, RECENT_FAILURES, StaleView};

use crate::config::Target;
use crate::report::{
    CycleReport, Failure, Outcome, Probe, ProbeResult, RequestPhases, Sink, Skip, TargetLabels,
    UploadSweep, unix_seconds,
};

/// An S3 request attempt slower than this is kept for the page's waterfall: the runbook's
/// latency threshold for S3 requests.
pub const SLOW_ATTEMPT: Duration = Duration::from_millis(500);

/// The window of the success ratio and latency percentiles.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most samples kept per probe in the window: 15 minutes of runs down to 3-second intervals,
/// the last 300 runs below that (about 5 KiB per probe).
const WINDOW_SAMPLES: usize = 300;

#[derive(Debug, Default)]
struct ProbeHistory {
    runs: u64,
    failures: u64,
    last: Option<(SystemTime, Option<Failure>)>,
    /// Set when the target's latest cycle did not run the probe, cleared by its next run.
    not_run: Option<Skip>,
    last_success: Option<SystemTime>,
    failing_since: Option<SystemTime>,
    window: VecDeque<Sample>,
}

/// One run in the window, 16 bytes (a `SystemTime`, `bool` and `Duration` tuple is 40): at 1000
/// targets with short intervals the windows are most of the status page's memory.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Finish time, milliseconds since the Unix epoch.
    at_ms: u64,
    /// Duration in microseconds (saturating at about 71 minutes, far above any timeout).
    micros: u32,
    ok: bool,
}

impl Sample {
    fn new(at: SystemTime, ok: bool, d: Duration) -> Self {
        Sample {
            at_ms: at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64,
            micros: u32::try_from(d.as_micros()).unwrap_or(u32::MAX),
            ok,
        }
    }

    fn at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.at_ms)
    }

    fn seconds(&self) -> f64 {
        f64::from(self.micros) / 1e6
    }
}

/// A target's probes' histories in probe order. A vector sized to the probes it has: a map's
/// node is sized for eleven of these (about 2.5 KiB a target where six are used).
#[derive(Debug, Default)]
struct Probes(Vec<(Probe, ProbeHistory)>);

impl Probes {
    fn get(&self, probe: &Probe) -> Option<&ProbeHistory> {
        let i = self.0.binary_search_by(|(p, _)| p.cmp(probe)).ok()?;
        Some(&self.0[i].1)
    }

    /// The history of `probe`, empty at first.
    fn entry(&mut self, probe: Probe) -> &mut ProbeHistory {
        let i = match self.0.binary_search_by(|(p, _)| p.cmp(&probe)) {
            Ok(i) => i,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (probe, ProbeHistory::default()));
                i
            }
        };
        &mut self.0[i].1
    }
}

#[derive(Debug, Default)]
struct TargetHistory {
    probes: Probes,
    failures: Recent,
    last_cycle: Option<SystemTime>,
    /// The last sweep of the multipart probe's uploads, and when it ended.
    uploads: Option<UploadsStatus>,
    /// The latest request attempt slower than [`SLOW_ATTEMPT`], with its phases.
    slow_attempt: Option<RequestPhases>,
}

impl TargetHistory {
    /// One run of a probe, about canary `key`, with the stale view it measured; a result
    /// that did not run counts nowhere.
    fn run(&mut self, r: &ProbeResult, key: &str, stale_view: Option<StaleView>) {
        let (probe, at, took) = (r.probe, r.finished_at, r.duration);
        let p = self.probes.entry(probe);
        let Some(failure) = r.ran_with() else {
            p.not_run = r.not_run.or(p.not_run);
            return;
        };
        p.not_run = None;
        p.runs += 1;
        p.window.push_back(Sample::new(at, failure.is_none(), took));
        while p.window.len() > WINDOW_SAMPLES
            || p.window
                .front()
                .is_some_and(|s| at.duration_since(s.at()).unwrap_or_default() > WINDOW)
        {
            p.window.pop_front();
        }
        match failure {
            None => {
                p.last = Some((at, None));
                p.last_success = Some(at);
                p.failing_since = None;
            }
            Some(f) => {
                p.failures += 1;
                p.last = Some((at, Some(f.clone())));
                p.failing_since.get_or_insert(at);
                self.failures
                    .add(at, probe, key, f, stale_view, p.last_success);
            }
        }
    }
}

/// Recent results of every target.
#[derive(Debug, Default)]
pub struct History(RwLock<HashMap<String, TargetHistory>>);

impl History {
    /// Adds a finished cycle.
    pub fn record(&self, report: &CycleReport) {
        let mut all = self.0.write().unwrap();
        let t = all.entry(report.target.clone()).or_default();
        t.last_cycle = Some(report.started_at);
        for r in &report.results {
            t.run(r, &report.key, StaleView::of(r.probe, &report.violations));
        }
        // The events probe has runs of its own time, but a cycle whose put failed wrote
        // nothing to be notified of: its last delivery is not current.
        // A put that passed again has its notification on the way.
        if let Some(put) = report.results.iter().find(|r| r.probe == Probe::Put) {
            let events = t.probes.entry(Probe::Events);
            events.not_run = match put.outcome {
                Some(Outcome::Success) => None,
                _ => Some(put.not_run.unwrap_or(Skip::After(Probe::Put))),
            };
        }
    }

    /// Adds a run of a probe on its own time (the events probe).
    pub fn record_result(&self, target: &str, key: &str, r: &ProbeResult) {
        let mut all = self.0.write().unwrap();
        all.entry(target.to_string()).or_default().run(r, key, None);
    }

    /// Forgets a target (removed by a reload).
    pub fn remove(&self, target: &str) {
        self.0.write().unwrap().remove(target);
    }
}

impl History {
    /// What the history knows of target `t` at `now`, for the status page.
    pub fn view(&self, t: &Target, now: SystemTime) -> TargetStatus {
        let all = self.0.read().unwrap();
        let empty = TargetHistory::default();
        let h = all.get(&t.name).unwrap_or(&empty);
        let probes: Vec<ProbeStatus> = t
            .probes
            .iter()
            .map(|p| {
                let ph = h.probes.get(p);
                let window: Vec<&Sample> = ph
                    .map(|x| {
                        x.window
                            .iter()
                            .filter(|s| now.duration_since(s.at()).unwrap_or_default() <= WINDOW)
                            .collect()
                    })
                    .unwrap_or_default();
                let mut lat: Vec<f64> = window.iter().map(|s| s.seconds()).collect();
                lat.sort_by(f64::total_cmp);
                let ok = window.iter().filter(|s| s.ok).count();
                let runs = window
                    .iter()
                    .map(|s| Run {
                        at: s.at(),
                        ok: s.ok,
                        seconds: s.seconds(),
                    })
                    .collect();
                let last = ph.and_then(|x| x.last.as_ref());
                let not_run = ph.and_then(|x| x.not_run);
                // What did not run in the latest cycle is not shown as current: neither its
                // last result nor since when it fails.
                let current = last.filter(|_| not_run.is_none());
                ProbeStatus {
                    probe: *p,
                    last_result: match (not_run, last) {
                        (Some(_), _) => Some("not_run"),
                        (None, Some((_, None))) => Some("success"),
                        (None, Some((_, Some(_)))) => Some("failure"),
                        (None, None) => None,
                    },
                    last_reason: current.and_then(|(_, f)| f.as_ref().map(|f| f.reason.as_str())),
                    not_run_because: not_run,
                    last_run_at: last.map(|(at, _)| *at),
                    last_run_result: last
                        .map(|(_, f)| if f.is_none() { "success" } else { "failure" }),
                    failing_since: ph
                        .and_then(|x| x.failing_since)
                        .filter(|_| not_run.is_none()),
                    last_success_at: ph.and_then(|x| x.last_success),
                    runs_total: ph.map_or(0, |x| x.runs),
                    failures_total: ph.map_or(0, |x| x.failures),
                    window_runs: window.len(),
                    success_ratio: (!window.is_empty()).then(|| ok as f64 / window.len() as f64),
                    latency_p50_seconds: percentile(&lat, 0.5),
                    latency_p99_seconds: percentile(&lat, 0.99),
                    runs,
                }
            })
            .collect();
        let healthy = probes.iter().all(|p| p.last_result != Some("failure"));
        TargetStatus {
            name: t.name.clone(),
            bucket: t.bucket.clone(),
            region: t.region.clone(),
            state: match (h.last_cycle, healthy) {
                (None, _) => TargetState::Waiting,
                (Some(_), true) => TargetState::Ok,
                (Some(_), false) => TargetState::Failing,
            },
            healthy,
            failing_since: probes.iter().filter_map(|p| p.failing_since).min(),
            last_cycle_at: h.last_cycle,
            probes,
            multipart_uploads: h.uploads.clone(),
            slow_attempt: h.slow_attempt.clone(),
            recent_failures: h.failures.view(|probe, at| {
                let passed = h.probes.get(&probe).and_then(|p| p.last_success);
                passed.filter(|s| *s > at)
            }),
        }
    }
}

impl Sink for History {
    fn cycle(&self, _t: &TargetLabels, report: &CycleReport) {
        self.record(report);
    }

    fn uploads_swept(&self, t: &TargetLabels, s: &UploadSweep) {
        let mut all = self.0.write().unwrap();
        all.entry(t.target.clone()).or_default().uploads = Some(UploadsStatus {
            at: SystemTime::now(),
            open: s.open,
            aborted: s.aborted,
            abort_failed: s.abort_failed,
            abort_error: s.abort_error.clone(),
            unsupported: s.unsupported.clone(),
        });
    }

    fn target_removed(&self, t: &TargetLabels) {
        self.remove(&t.target);
    }

    fn request_phases(&self, t: &TargetLabels, p: &RequestPhases) {
        if p.total() > SLOW_ATTEMPT {
            let mut all = self.0.write().unwrap();
            all.entry(t.target.clone()).or_default().slow_attempt = Some(p.clone());
        }
    }

    fn result(&self, t: &TargetLabels, key: &str, r: &ProbeResult) {
        self.record_result(&t.target, key, r);
    }
}

pub(crate) fn ts<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(unix_seconds(*t))
}

pub(crate) fn opt_ts<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_f64(unix_seconds(*t)),
        None => s.serialize_none(),
    }
}

fn opt_rfc3339<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(&humantime::format_rfc3339_millis(*t)),
        None => s.serialize_none(),
    }
}

/// Where a target stands, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// No cycle has finished yet: nothing is known, which is not "OK".
    Waiting,
    /// The last run of every probe passed.
    Ok,
    /// The last run of some probe failed.
    Failing,
}

/// One target.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub bucket: String,
    pub region: String,
    pub state: TargetState,
    /// False when the last run of any probe failed.
    pub healthy: bool,
    /// When the oldest current failure of its probes began.
    #[serde(serialize_with = "opt_ts")]
    pub failing_since: Option<SystemTime>,
    #[serde(serialize_with = "opt_ts")]
    pub last_cycle_at: Option<SystemTime>,
    pub probes: Vec<ProbeStatus>,
    /// The last sweep of the multipart probe's uploads (absent without the probe, or before
    /// the first sweep).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multipart_uploads: Option<UploadsStatus>,
    /// The latest request attempt slower than [`SLOW_ATTEMPT`], with its phases (absent
    /// before there was one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_attempt: Option<RequestPhases>,
    /// Newest first; identical failures folded into one entry.
    pub recent_failures: Vec<FailureRecord>,
}

/// What the last sweep of a target's multipart uploads found.
#[derive(Debug, Clone, Serialize)]
pub struct UploadsStatus {
    /// When the sweep ended.
    #[serde(serialize_with = "ts")]
    pub at: SystemTime,
    /// The probe's uploads still open (in flight, or younger than `orphan_ttl`).
    pub open: u64,
    /// Uploads of earlier runs, past `orphan_ttl`, that this sweep aborted.
    pub aborted: u64,
    /// Uploads of earlier runs whose abort failed (counted in `open`), and why the last did.
    pub abort_failed: u64,
    pub abort_error: Option<String>,
    /// Why the sweep could not look, when the store does not list uploads (501); the probe's
    /// uploads are still aborted by the probe itself.
    pub unsupported: Option<String>,
}

/// One probe of a target.
#[derive(Debug, Serialize)]
pub struct ProbeStatus {
    pub probe: Probe,
    /// "success", "failure", "not_run" (the target's latest cycle did not run it), or null
    /// before the first run.
    pub last_result: Option<&'static str>,
    /// The reason of the last run when it failed and is current.
    pub last_reason: Option<&'static str>,
    /// When `last_result` is "not_run": the probe whose failure skipped it ("put"),
    /// "deadline" or "shutdown".
    pub not_run_because: Option<Skip>,
    /// When it last really ran (RFC 3339, as the contract has it), and how that run ended
    /// ("success", "failure").
    #[serde(serialize_with = "opt_rfc3339")]
    pub last_run_at: Option<SystemTime>,
    pub last_run_result: Option<&'static str>,
    #[serde(serialize_with = "opt_ts")]
    pub failing_since: Option<SystemTime>,
    #[serde(serialize_with = "opt_ts")]
    pub last_success_at: Option<SystemTime>,
    pub runs_total: u64,
    pub failures_total: u64,
    /// Runs within the window.
    pub window_runs: usize,
    /// Over the window; null without runs in it.
    pub success_ratio: Option<f64>,
    pub latency_p50_seconds: Option<f64>,
    pub latency_p99_seconds: Option<f64>,
    /// The runs in the window, oldest first: the page draws them (the API keeps its summary).
    #[serde(skip)]
    pub runs: Vec<Run>,
}

/// One run of a probe in the window.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub at: SystemTime,
    pub ok: bool,
    pub seconds: f64,
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}
