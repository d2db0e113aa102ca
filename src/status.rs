//! What the status page (`/`) and `/api/v1/status` show: per target and probe, the last result,
//! since when it fails, success ratio and latency over a recent window, the last failures with
//! what AWS support asks for, and replication pairs with their pending canaries.
//!
//! The [`History`] is fed by the same cycle reports as the Prometheus metrics, so the page and
//! `/metrics` never disagree.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::app::Daemon;
use crate::config::Probe;
use crate::metrics::unix_seconds;
use crate::probe::{CycleReport, Failure, Outcome};

/// The window of the success ratio and latency percentiles.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most samples kept per probe in the window: 15 minutes of runs down to 3-second intervals,
/// the last 300 runs below that (about 5 KiB per probe).
const WINDOW_SAMPLES: usize = 300;
/// Failures kept per target.
const RECENT_FAILURES: usize = 10;

#[derive(Debug, Default)]
struct ProbeHistory {
    runs: u64,
    failures: u64,
    last: Option<(SystemTime, Option<Failure>)>,
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

/// A failure as shown on the page.
#[derive(Debug, Clone, Serialize)]
pub struct FailureRecord {
    #[serde(serialize_with = "ts")]
    pub at: SystemTime,
    pub probe: Probe,
    pub key: String,
    #[serde(flatten)]
    pub failure: Failure,
}

#[derive(Debug, Default)]
struct TargetHistory {
    probes: BTreeMap<Probe, ProbeHistory>,
    failures: VecDeque<FailureRecord>,
    last_cycle: Option<SystemTime>,
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
            let Some(outcome) = &r.outcome else { continue };
            let p = t.probes.entry(r.probe).or_default();
            p.runs += 1;
            let at = r.finished_at;
            let ok = matches!(outcome, Outcome::Success);
            p.window.push_back(Sample::new(at, ok, r.duration));
            while p.window.len() > WINDOW_SAMPLES
                || p.window
                    .front()
                    .is_some_and(|s| at.duration_since(s.at()).unwrap_or_default() > WINDOW)
            {
                p.window.pop_front();
            }
            match outcome {
                Outcome::Success => {
                    p.last = Some((at, None));
                    p.last_success = Some(at);
                    p.failing_since = None;
                }
                Outcome::Failure(f) => {
                    p.failures += 1;
                    p.last = Some((at, Some(f.clone())));
                    p.failing_since.get_or_insert(at);
                    t.failures.push_front(FailureRecord {
                        at,
                        probe: r.probe,
                        key: report.key.clone(),
                        failure: f.clone(),
                    });
                    t.failures.truncate(RECENT_FAILURES);
                }
            }
        }
    }

    /// Forgets a target (removed by a reload).
    pub fn remove(&self, target: &str) {
        self.0.write().unwrap().remove(target);
    }
}

fn ts<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(unix_seconds(*t))
}

fn opt_ts<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_f64(unix_seconds(*t)),
        None => s.serialize_none(),
    }
}

/// A point-in-time view of the daemon.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub version: &'static str,
    pub ready: bool,
    #[serde(serialize_with = "ts")]
    pub generated_at: SystemTime,
    pub window_seconds: u64,
    pub config: ConfigStatus,
    pub cloudwatch: CloudWatchStatus,
    pub targets: Vec<TargetStatus>,
    pub replications: Vec<crate::replication::Status>,
}

/// Config load state.
#[derive(Debug, Serialize)]
pub struct ConfigStatus {
    pub last_reload_successful: bool,
    pub last_reload_error: Option<String>,
}

/// CloudWatch mirror state.
#[derive(Debug, Serialize)]
pub struct CloudWatchStatus {
    pub enabled: bool,
    pub namespace: String,
}

/// One target.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub bucket: String,
    pub region: String,
    /// False when the last run of any probe failed.
    pub healthy: bool,
    #[serde(serialize_with = "opt_ts")]
    pub last_cycle_at: Option<SystemTime>,
    pub probes: Vec<ProbeStatus>,
    /// Newest first.
    pub recent_failures: Vec<FailureRecord>,
}

/// One probe of a target.
#[derive(Debug, Serialize)]
pub struct ProbeStatus {
    pub probe: Probe,
    /// "success", "failure", or null before the first run.
    pub last_result: Option<&'static str>,
    pub last_reason: Option<&'static str>,
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
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

/// Collects the snapshot.
pub fn snapshot(d: &Daemon) -> Snapshot {
    d.refresh_gauges();
    let cfg = d.config();
    let now = SystemTime::now();
    let all = d.history.0.read().unwrap();
    let empty = TargetHistory::default();
    // One lock at a time: a std Mutex locked twice in one expression deadlocks.
    let reload_error = d.reload_error.lock().unwrap().clone();
    let targets = cfg
        .targets
        .iter()
        .map(|t| {
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
                                .filter(|s| {
                                    now.duration_since(s.at()).unwrap_or_default() <= WINDOW
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let mut lat: Vec<f64> = window.iter().map(|s| s.seconds()).collect();
                    lat.sort_by(f64::total_cmp);
                    let ok = window.iter().filter(|s| s.ok).count();
                    let last = ph.and_then(|x| x.last.as_ref());
                    ProbeStatus {
                        probe: *p,
                        last_result: last
                            .map(|(_, f)| if f.is_none() { "success" } else { "failure" }),
                        last_reason: last.and_then(|(_, f)| f.as_ref().map(|f| f.reason.as_str())),
                        failing_since: ph.and_then(|x| x.failing_since),
                        last_success_at: ph.and_then(|x| x.last_success),
                        runs_total: ph.map_or(0, |x| x.runs),
                        failures_total: ph.map_or(0, |x| x.failures),
                        window_runs: window.len(),
                        success_ratio: (!window.is_empty())
                            .then(|| ok as f64 / window.len() as f64),
                        latency_p50_seconds: percentile(&lat, 0.5),
                        latency_p99_seconds: percentile(&lat, 0.99),
                    }
                })
                .collect();
            TargetStatus {
                name: t.name.clone(),
                bucket: t.bucket.clone(),
                region: t.region.clone(),
                healthy: probes.iter().all(|p| p.last_result != Some("failure")),
                last_cycle_at: h.last_cycle,
                probes,
                recent_failures: h.failures.iter().cloned().collect(),
            }
        })
        .collect();
    Snapshot {
        version: env!("CARGO_PKG_VERSION"),
        ready: d.is_ready(),
        generated_at: now,
        window_seconds: WINDOW.as_secs(),
        config: ConfigStatus {
            last_reload_successful: reload_error.is_none(),
            last_reload_error: reload_error,
        },
        cloudwatch: CloudWatchStatus {
            enabled: cfg.cloudwatch.enabled,
            namespace: cfg.cloudwatch.namespace.clone(),
        },
        targets,
        replications: d.replication_status(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn when(t: Option<SystemTime>) -> String {
    match t {
        Some(t) => humantime::format_rfc3339_seconds(t).to_string(),
        None => "never".into(),
    }
}

fn ms(s: Option<f64>) -> String {
    s.map_or("–".into(), |s| format!("{:.1} ms", s * 1000.0))
}

/// A self-contained HTML page (no external assets) that refreshes itself every 10 s.
/// State is written out in words (OK / FAILING), colour only repeats it.
pub fn render_html(s: &Snapshot) -> String {
    let mut body = String::new();
    let failing = s.targets.iter().filter(|t| !t.healthy).count();
    body.push_str(&format!(
        "<p class=\"summary {}\">{} of {} targets failing · window {} min · generated {}</p>\n",
        if failing > 0 { "bad" } else { "good" },
        failing,
        s.targets.len(),
        s.window_seconds / 60,
        when(Some(s.generated_at))
    ));
    for t in &s.targets {
        let state = if t.healthy { "OK" } else { "FAILING" };
        body.push_str(&format!(
            "<section class=\"target\" id=\"target-{name}\"><h2><span class=\"state {cls}\">{state}</span> {name} <small>s3://{bucket} · {region} · last cycle {last}</small></h2>\n",
            name = esc(&t.name), bucket = esc(&t.bucket), region = esc(&t.region),
            cls = if t.healthy { "good" } else { "bad" }, last = when(t.last_cycle_at)
        ));
        body.push_str("<div class=\"scroll\"><table><tr><th>probe</th><th>last result</th><th>failing since</th><th>success</th><th>p50</th><th>p99</th><th>last success</th></tr>\n");
        for p in &t.probes {
            let (cls, result) = match (p.last_result, p.last_reason) {
                (Some("success"), _) => ("good", "✔ ok".to_string()),
                (Some(_), Some(r)) => ("bad", format!("✘ FAIL {r}")),
                _ => ("", "not run yet".to_string()),
            };
            body.push_str(&format!(
                "<tr class=\"{cls}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                p.probe.as_str(),
                esc(&result),
                p.failing_since.map_or("–".into(), |t| when(Some(t))),
                p.success_ratio.map_or("–".into(), |r| format!("{:.1}% of {}", r * 100.0, p.window_runs)),
                ms(p.latency_p50_seconds),
                ms(p.latency_p99_seconds),
                when(p.last_success_at),
            ));
        }
        body.push_str("</table></div>\n");
        if !t.recent_failures.is_empty() {
            body.push_str("<h3>Recent failures</h3><ul class=\"failures\">\n");
            for f in &t.recent_failures {
                let x = &f.failure;
                body.push_str(&format!(
                    "<li><b>{} {}</b> {} {} {}<br>{}<br>key <code>{}</code><br>x-amz-request-id <code class=\"rid\">{}</code> · x-amz-id-2 <code>{}</code></li>\n",
                    when(Some(f.at)), f.probe.as_str(), x.reason.as_str(),
                    x.operation.unwrap_or(""), esc(x.code.as_deref().unwrap_or("")),
                    esc(&x.message), esc(&f.key),
                    esc(x.request_id.as_deref().unwrap_or("-")),
                    esc(x.extended_request_id.as_deref().unwrap_or("-")),
                ));
            }
            body.push_str("</ul>\n");
        }
        body.push_str("</section>\n");
    }
    if !s.replications.is_empty() {
        body.push_str("<section><h2>Replication</h2><div class=\"scroll\"><table><tr><th>pair</th><th>from</th><th>to</th><th>last lag</th><th>pending</th><th>oldest pending</th><th>timeouts</th></tr>\n");
        for r in &s.replications {
            let oldest = r.pending.iter().map(|p| p.age_seconds).fold(0.0, f64::max);
            body.push_str(&format!(
                "<tr><td>{}</td><td>{} ({})</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{:.1} s</td><td>{}</td></tr>\n",
                esc(&r.name), esc(&r.source_bucket), esc(&r.source_region),
                esc(&r.destination_bucket), esc(&r.destination_region),
                r.last_lag_seconds.map_or("–".into(), |l| format!("{l:.2} s")),
                r.pending.len(), oldest, r.timeouts_total
            ));
        }
        body.push_str("</table></div></section>\n");
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>s3canary{title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:0.8em;color:#111}}
h1{{font-size:1.4em}} h2{{font-size:1.1em;margin:1em 0 0.3em}} small{{color:#555;font-weight:normal}}
.scroll{{overflow-x:auto}} table{{border-collapse:collapse;min-width:100%}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left;font-size:14px;white-space:nowrap}}
tr.bad{{background:#fde2e2}} tr.good{{background:#e6f6e6}}
.state{{padding:1px 6px;border-radius:3px;font-size:0.9em}} .state.good{{background:#2e7d32;color:#fff}} .state.bad{{background:#c62828;color:#fff}}
.summary.bad{{font-weight:bold;color:#c62828}} ul.failures li{{margin-bottom:0.5em;font-size:14px;word-break:break-all}}
footer{{margin-top:2em;color:#555;font-size:13px}}
</style></head>
<body><h1>s3canary</h1>
{body}
<footer>s3canary {version} · ready: {ready} · config: {config} · CloudWatch mirror: {cw} ·
<a href="/metrics">/metrics</a> · <a href="/api/v1/status">/api/v1/status</a></footer>
</body></html>
"#,
        title = if failing > 0 {
            format!(" — {failing} FAILING")
        } else {
            String::new()
        },
        version = s.version,
        ready = if s.ready { "yes" } else { "no" },
        config = match &s.config.last_reload_error {
            None => "loaded".to_string(),
            Some(e) => format!(
                "last reload FAILED ({}), running the previous config",
                esc(e)
            ),
        },
        cw = if s.cloudwatch.enabled {
            format!("on ({})", esc(&s.cloudwatch.namespace))
        } else {
            "off".into()
        },
    )
}
