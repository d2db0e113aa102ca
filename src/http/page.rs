//! The status page: one self-contained HTML document (no external assets, no JavaScript)
//! rendered from a [`Snapshot`].

use std::time::{Duration, SystemTime};

use super::status::Snapshot;
use super::svg;
use crate::sinks::history::TargetState;

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

/// How long ago `t` was, to the second ("4m 10s").
fn ago(t: SystemTime, now: SystemTime) -> String {
    let d = now.duration_since(t).unwrap_or_default();
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// A probe the latest cycle did not run: why, and how old its last real result is.
fn not_run(p: &crate::sinks::history::ProbeStatus, now: SystemTime) -> String {
    let why = p
        .not_run_because
        .map_or("not run".to_string(), |w| format!("not run: {w}"));
    match (p.last_run_at, p.last_run_result) {
        (Some(at), Some(r)) => {
            let r = if r == "success" { "ok" } else { "failed" };
            format!("– {why} (last run {r}, {} ago)", ago(at, now))
        }
        _ => format!("– {why} (never ran)"),
    }
}

fn ms(s: Option<f64>) -> String {
    s.map_or("–".into(), |s| format!("{:.1} ms", s * 1000.0))
}

/// The replication pairs: state in words, the last lag and its age, what is pending, and the
/// last failure with its reason, time and words.
fn replication(pairs: &[crate::replication::Status], now: SystemTime) -> String {
    use crate::replication::State;
    let mut out = String::from(
        "<section><h2>Replication</h2><div class=\"scroll\"><table><tr><th>pair</th><th>state</th><th>from → to</th><th>last lag</th><th>pending</th><th>oldest pending</th><th>timeouts</th></tr>\n",
    );
    for r in pairs {
        let (cls, state) = match r.state {
            State::Ok => ("good", "OK"),
            State::Failing => ("bad", "FAILING"),
            State::Stalled => ("bad", "STALLED"),
        };
        let lag = match (r.last_lag_seconds, r.last_lag_age_seconds) {
            (Some(l), Some(age)) => format!(
                "{l:.2} s ({} ago)",
                humantime::format_duration(Duration::from_secs(age as u64))
            ),
            _ => "none yet".into(),
        };
        let oldest = r.pending.first().map_or(0.0, |p| p.age_seconds);
        out.push_str(&format!(
            "<tr class=\"{cls}\"><td>{}</td><td><span class=\"state {cls}\">{state}</span></td><td>{} ({}) → {} ({})</td><td>{}</td><td>{}</td><td>{:.1} s</td><td>{}</td></tr>\n",
            esc(&r.name), esc(&r.source_bucket), esc(&r.source_region),
            esc(&r.destination_bucket), esc(&r.destination_region),
            lag, r.pending.len(), oldest, r.timeouts_total
        ));
        if let Some(f) = &r.last_failure {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(f.at);
            let resolved = if r.state == State::Ok {
                "resolved · "
            } else {
                ""
            };
            out.push_str(&format!(
                "<tr class=\"detail\"><td colspan=\"7\">last failure: {resolved}<b>{}</b> at {} ({} ago): {}</td></tr>\n",
                f.reason, when(Some(at)), ago(at, now), esc(&f.message)
            ));
        }
    }
    out.push_str("</table></div></section>\n");
    out
}

/// A self-contained HTML page (no external assets) that refreshes itself every 10 s.
/// State is written out in words (OK / FAILING), colour only repeats it.
pub fn render(s: &Snapshot) -> String {
    let mut body = String::new();
    let count = |state| s.targets.iter().filter(|t| t.state == state).count();
    let (failing, waiting) = (count(TargetState::Failing), count(TargetState::Waiting));
    let window = Duration::from_secs(s.window_seconds);
    let now = s.generated_at;
    body.push_str(&format!(
        "<p class=\"summary {}\">{} of {} targets failing{} · window {} min · generated {}</p>\n",
        if failing > 0 { "bad" } else { "good" },
        failing,
        s.targets.len(),
        if waiting > 0 {
            format!(", {waiting} waiting for their first cycle")
        } else {
            String::new()
        },
        s.window_seconds / 60,
        when(Some(now))
    ));
    for t in &s.targets {
        let (cls, state) = match (t.state, t.failing_since) {
            (TargetState::Waiting, _) => ("wait", "WAITING for first cycle".to_string()),
            (TargetState::Ok, _) => ("good", "OK".to_string()),
            (TargetState::Failing, Some(since)) => (
                "bad",
                format!(
                    "FAILING since {} ({} ago)",
                    when(Some(since)),
                    ago(since, now)
                ),
            ),
            (TargetState::Failing, None) => ("bad", "FAILING".to_string()),
        };
        body.push_str(&format!(
            "<section class=\"target\" id=\"target-{name}\"><h2><span class=\"state {cls}\">{state}</span> {name} <small>s3://{bucket} · {region} · last cycle {last}</small></h2>\n",
            name = esc(&t.name), bucket = esc(&t.bucket), region = esc(&t.region),
            state = esc(&state), last = when(t.last_cycle_at)
        ));
        body.push_str(&format!("<div class=\"scroll\"><table><tr><th>probe</th><th>last result</th><th>failing since</th><th>last {} min: passed, slow (over {} ms), failed</th><th>duration</th><th>success</th><th>p50</th><th>p99</th><th>last success</th></tr>\n", s.window_seconds / 60, svg::SLOW_SECONDS * 1000.0));
        for p in &t.probes {
            let (cls, result) = match (p.last_result, p.last_reason) {
                (Some("success"), _) => ("good", "✔ ok".to_string()),
                (Some("not_run"), _) => ("skip", not_run(p, now)),
                (Some(_), Some(r)) => ("bad", format!("✘ FAIL {r}")),
                _ if t.state == TargetState::Waiting => ("", "waiting for first cycle".to_string()),
                _ => ("", "not run yet (a step before it failed)".to_string()),
            };
            body.push_str(&format!(
                "<tr class=\"{cls}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                p.probe.as_str(),
                esc(&result),
                p.failing_since.map_or("–".into(), |t| when(Some(t))),
                svg::strip(&p.runs, now, window),
                svg::sparkline(&p.runs, now, window),
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
        body.push_str(&replication(&s.replications, now));
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
tr.detail td{{white-space:normal;font-size:13px;color:#333}} tr.bad{{background:#fde2e2}} tr.good{{background:#e6f6e6}} tr.skip{{background:#eee;color:#666}}
.state{{padding:1px 6px;border-radius:3px;font-size:0.9em}} .state.good{{background:#2e7d32;color:#fff}} .state.bad{{background:#c62828;color:#fff}} .state.wait{{background:#555;color:#fff}}
svg{{display:block}}
.summary.bad{{font-weight:bold;color:#c62828}} ul.failures li{{margin-bottom:0.5em;font-size:14px;word-break:break-all}}
footer{{margin-top:2em;color:#555;font-size:13px}}
</style></head>
<body><h1>s3canary</h1>
{body}
<footer>s3canary {version} · ready: {ready} · config: {config}{shard} · CloudWatch mirror: {cw} ·
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
        shard = if s.shard.count > 1 {
            format!(
                " · shard {} of {} ({} of {} targets)",
                s.shard.index, s.shard.count, s.shard.targets, s.shard.configured_targets
            )
        } else {
            String::new()
        },
        cw = if s.cloudwatch.enabled {
            format!("on ({})", esc(&s.cloudwatch.namespace))
        } else {
            "off".into()
        },
    )
}
