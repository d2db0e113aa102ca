//! The status page: one self-contained HTML document (no external assets, no JavaScript)
//! rendered from a [`Snapshot`].

use std::time::{Duration, SystemTime};

mod failures;
mod replication;
mod target;

use super::status::Snapshot;
use crate::sinks::history::TargetState;

/// `s` escaped for HTML text and attribute values.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `t` in RFC 3339 to the second, or "never".
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

/// The time of day of `t`, UTC, to the second ("11:43:30").
fn clock(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(11..19).unwrap_or(&s).to_string()
}

/// Seconds in milliseconds to a tenth, or "–".
fn ms(s: Option<f64>) -> String {
    s.map_or("–".into(), |s| format!("{:.1} ms", s * 1000.0))
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
        body.push_str(&target::section(t, now, window));
    }
    if !s.replications.is_empty() {
        body.push_str(&replication::table(&s.replications, now));
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
td.result{{white-space:normal;min-width:12em;max-width:22em}} td small{{color:#555}}
.summary.bad{{font-weight:bold;color:#c62828}} ul.failures{{padding-left:1.2em}} ul.failures li{{margin-bottom:0.5em;font-size:14px;overflow-wrap:anywhere}}
.hint{{color:#444}} li.resolved{{color:#555}} .ok{{color:#2e7d32;font-weight:bold}} details.resolved summary{{cursor:pointer;color:#555;font-size:14px;margin:0.3em 0}}
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
