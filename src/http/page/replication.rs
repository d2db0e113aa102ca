//! The replication pairs: state in words, the last lag and its age, what is pending, and the
//! last failure with its reason, time and words.

use std::time::{Duration, SystemTime};

use super::{ago, esc, when};
use crate::replication::{State, Status};

/// The table of `pairs` at `now`.
pub(super) fn table(pairs: &[Status], now: SystemTime) -> String {
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
