//! A target's recent failures: identical ones folded ("12× put server_error PutObject
//! ServiceUnavailable, 11:43:30-11:45:08"), each with its reason's hint and runbook link, a
//! stale read with how long the stale view lasted, and resolved ones marked and folded away.

use std::time::SystemTime;

use super::{ago, clock, esc};
use crate::sinks::history::FailureRecord;

/// The list of `failures` (newest first) at `now`: current ones open, resolved ones folded.
pub(super) fn list(failures: &[FailureRecord], now: SystemTime) -> String {
    if failures.is_empty() {
        return String::new();
    }
    let (resolved, open): (Vec<&FailureRecord>, Vec<&FailureRecord>) =
        failures.iter().partition(|f| f.resolved_at.is_some());
    let mut out = String::from("<h3>Recent failures</h3>\n");
    if !open.is_empty() {
        out.push_str("<ul class=\"failures\">\n");
        open.iter().for_each(|f| out.push_str(&item(f, now)));
        out.push_str("</ul>\n");
    }
    if !resolved.is_empty() {
        let n: u64 = resolved.iter().map(|f| f.count).sum();
        out.push_str(&format!(
            "<details class=\"resolved\"><summary>{n} resolved failure{} (the probe passed again)</summary><ul class=\"failures\">\n",
            if n == 1 { "" } else { "s" }
        ));
        resolved.iter().for_each(|f| out.push_str(&item(f, now)));
        out.push_str("</ul></details>\n");
    }
    out
}

/// One entry: what failed how often and when, what S3 said, what to check, and the IDs of
/// the latest request.
fn item(f: &FailureRecord, now: SystemTime) -> String {
    let x = &f.failure;
    let what = format!(
        "{} {}{}{}",
        f.probe.as_str(),
        x.reason.as_str(),
        x.operation.map_or(String::new(), |o| format!(" {o}")),
        x.code
            .as_deref()
            .map_or(String::new(), |c| format!(" {}", esc(c))),
    );
    let times = if f.count > 1 {
        format!(
            "{}× {what}, {}-{} UTC",
            f.count,
            clock(f.first_at),
            clock(f.at)
        )
    } else {
        format!("{what}, {} UTC", clock(f.at))
    };
    let resolved = f.resolved_at.map_or(String::new(), |t| {
        format!(" <span class=\"ok\">✔ resolved {} UTC</span>", clock(t))
    });
    let stale = f.stale_view.map_or(String::new(), |v| {
        if v.ended {
            format!("<br>the stale view lasted {:.2} s", v.seconds)
        } else {
            format!(
                "<br>still stale after {:.2} s, when the cycle ran out of time",
                v.seconds
            )
        }
    });
    format!(
        "<li class=\"{cls}\"><b>{times}</b> ({ago} ago){resolved}<br>{message}{stale}<br><span class=\"hint\">{hint}</span> · <a href=\"/runbook#{anchor}\">runbook</a><br>latest: key <code>{key}</code> · x-amz-request-id <code class=\"rid\">{rid}</code> · x-amz-id-2 <code>{id2}</code></li>\n",
        cls = if f.resolved_at.is_some() {
            "resolved"
        } else {
            "open"
        },
        ago = ago(f.at, now),
        message = esc(&x.message),
        hint = esc(x.reason.hint()),
        anchor = x.reason.anchor(),
        key = esc(&f.key),
        rid = esc(x.request_id.as_deref().unwrap_or("-")),
        id2 = esc(x.extended_request_id.as_deref().unwrap_or("-")),
    )
}
