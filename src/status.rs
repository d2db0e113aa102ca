//! What the status page and `/api/v1/status` show: the last cycle of every target.

use serde::Serialize;

use crate::app::Daemon;
use crate::probe::CycleReport;

/// A point-in-time view of the daemon.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub version: &'static str,
    pub ready: bool,
    pub config_reload_error: Option<String>,
    pub targets: Vec<TargetStatus>,
}

/// One target and its last cycle (none before the first cycle finished).
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub bucket: String,
    pub region: String,
    pub last_cycle: Option<CycleReport>,
}

/// Collects the snapshot.
pub fn snapshot(d: &Daemon) -> Snapshot {
    let cfg = d.config();
    let last = d.last.read().unwrap();
    Snapshot {
        version: env!("CARGO_PKG_VERSION"),
        ready: d.is_ready(),
        config_reload_error: d.reload_error.lock().unwrap().clone(),
        targets: cfg
            .targets
            .iter()
            .map(|t| TargetStatus {
                name: t.name.clone(),
                bucket: t.bucket.clone(),
                region: t.region.clone(),
                last_cycle: last.get(&t.name).cloned(),
            })
            .collect(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A self-contained HTML page (no external assets) that refreshes itself.
pub fn render_html(s: &Snapshot) -> String {
    let mut rows = String::new();
    for t in &s.targets {
        let Some(c) = &t.last_cycle else {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td colspan=\"3\">waiting for the first cycle</td></tr>\n",
                esc(&t.name), esc(&t.bucket), esc(&t.region)
            ));
            continue;
        };
        for r in &c.results {
            let (state, detail) = match &r.outcome {
                None => ("not run".to_string(), String::new()),
                Some(crate::probe::Outcome::Success) => ("✔ ok".to_string(), String::new()),
                Some(crate::probe::Outcome::Failure(f)) => (
                    format!("✘ {}", f.reason.as_str()),
                    format!(
                        "{} {} — {} (x-amz-request-id: {}, x-amz-id-2: {}) key {}",
                        f.operation.unwrap_or(""),
                        f.code.as_deref().unwrap_or(""),
                        f.message,
                        f.request_id.as_deref().unwrap_or("-"),
                        f.extended_request_id.as_deref().unwrap_or("-"),
                        c.key
                    ),
                ),
            };
            let class = if state.starts_with('✘') {
                "fail"
            } else {
                "ok"
            };
            rows.push_str(&format!(
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} ms</td><td>{}</td></tr>\n",
                esc(&t.name), esc(&t.bucket), esc(&t.region), r.probe.as_str(), esc(&state),
                r.duration.as_secs_f64() * 1000.0, esc(&detail)
            ));
        }
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>s3canary</title>
<style>body{{font-family:sans-serif;margin:1em}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:4px;text-align:left;font-size:14px}}
tr.fail{{background:#fdd}}tr.ok{{background:#efe}}</style></head>
<body><h1>s3canary {}</h1>
<p>ready: {} · config reload: {}</p>
<table><tr><th>target</th><th>bucket</th><th>region</th><th>probe</th><th>last result</th><th>duration</th><th>last failure</th></tr>
{rows}</table>
<p><a href="/metrics">/metrics</a> · <a href="/api/v1/status">/api/v1/status</a></p>
</body></html>
"#,
        s.version,
        s.ready,
        match &s.config_reload_error {
            None => "ok".to_string(),
            Some(e) => format!("FAILED: {}", esc(e)),
        }
    )
}
