//! One target's section of the page: its state in words, a table of its probes that fits a
//! 1280 px screen, and its recent failures.

use std::time::{Duration, SystemTime};

use super::{ago, clock, esc, failures, ms, when};
use crate::http::svg;
use crate::report::RequestPhases;
use crate::sinks::history::{ProbeStatus, SLOW_ATTEMPT, TargetState, TargetStatus, UploadsStatus};

/// The section of target `t` at `now`, its runs drawn over `window`.
pub(super) fn section(t: &TargetStatus, now: SystemTime, window: Duration) -> String {
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
    let mut out = format!(
        "<section class=\"target\" id=\"target-{name}\"><h2><span class=\"state {cls}\">{state}</span> {name} <small>s3://{bucket} · {region} · last cycle {last}</small></h2>\n",
        name = esc(&t.name),
        bucket = esc(&t.bucket),
        region = esc(&t.region),
        state = esc(&state),
        last = when(t.last_cycle_at)
    );
    out.push_str(&format!(
        "<div class=\"scroll\"><table class=\"probes\"><tr><th>probe</th><th>last result</th><th>last {} min: passed, slow, failed</th><th>durations</th><th>success</th><th>p50 / p99</th><th>last success</th></tr>\n",
        window.as_secs() / 60
    ));
    for p in &t.probes {
        out.push_str(&row(p, t.state, now, window));
    }
    out.push_str("</table></div>\n");
    out.push_str(&slow_attempt(t.slow_attempt.as_ref(), now));
    if let Some(u) = &t.multipart_uploads {
        out.push_str(&uploads(u, now));
    }
    out.push_str(&failures::list(&t.recent_failures, now));
    out.push_str("</section>\n");
    out
}

/// The latest slow request attempt as a waterfall of its phases: S3 or the path to it.
fn slow_attempt(p: Option<&RequestPhases>, now: SystemTime) -> String {
    let slow = humantime::format_duration(SLOW_ATTEMPT);
    let Some(p) = p else {
        return format!("<p class=\"slow-attempt\">No request over {slow} since the start.</p>\n");
    };
    let connection = if p.new_connection {
        "on a new connection"
    } else {
        "on a reused connection"
    };
    format!(
        "<div class=\"slow-attempt\"><p>Latest request over {slow}: {} ago, {connection}, x-amz-request-id <code>{}</code></p>{}</div>\n",
        ago(p.at, now),
        esc(p.request_id.as_deref().unwrap_or("-")),
        svg::waterfall(p)
    )
}

/// The last sweep of the multipart probe's uploads, in one line.
fn uploads(u: &UploadsStatus, now: SystemTime) -> String {
    let found = match &u.unsupported {
        Some(why) => format!("could not look: {}", esc(why)),
        None => format!("{} open, {} of earlier runs aborted", u.open, u.aborted),
    };
    let failed = match &u.abort_error {
        Some(why) => format!("; {} could not be aborted: {}", u.abort_failed, esc(why)),
        None => String::new(),
    };
    format!(
        "<p class=\"uploads\">Multipart uploads at the last sweep ({} ago): {found}{failed}</p>\n",
        ago(u.at, now)
    )
}

/// One probe's row.
fn row(p: &ProbeStatus, state: TargetState, now: SystemTime, window: Duration) -> String {
    let (cls, result) = match (p.last_result, p.last_reason) {
        (Some("success"), _) => ("good", "✔ ok".to_string()),
        (Some("not_run"), _) => ("skip", esc(&not_run(p, now))),
        (Some(_), Some(r)) => {
            let since = p.failing_since.map_or(String::new(), |t| {
                format!(" <small>since {} ({} ago)</small>", clock(t), ago(t, now))
            });
            ("bad", format!("✘ FAIL {r}{since}"))
        }
        _ if state == TargetState::Waiting => ("", "waiting for first cycle".to_string()),
        _ => ("", "not run yet (a step before it failed)".to_string()),
    };
    let slow = svg::slow_after(p.probe);
    format!(
        "<tr class=\"{cls}\"><td>{}</td><td class=\"result\">{result}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>\n",
        p.probe.as_str(),
        svg::strip(&p.runs, now, window, slow),
        svg::sparkline(&p.runs, now, window),
        p.success_ratio.map_or("–".into(), |r| format!(
            "{:.1}% of {}",
            r * 100.0,
            p.window_runs
        )),
        ms(p.latency_p50_seconds),
        ms(p.latency_p99_seconds),
        p.last_success_at.map_or("never".into(), |t| format!(
            "<span title=\"{}\">{} ago</span>",
            when(Some(t)),
            ago(t, now)
        )),
    )
}

/// A probe the latest cycle did not run: why, and how old its last real result is.
fn not_run(p: &ProbeStatus, now: SystemTime) -> String {
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
