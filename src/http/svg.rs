//! The status page's pictures, drawn on the server as inline SVG (no JavaScript, no assets):
//! a strip of a probe's runs over the window, each coloured passed, slow or failed and placed
//! at the time it ran (so a gap is a gap), and a sparkline of their durations.

use std::time::{Duration, SystemTime};

use crate::report::{Phase, Probe, RequestPhases};
use crate::sinks::history::Run;

/// A passed run of `probe` that took longer than this many seconds is drawn as slow: the
/// runbook's latency threshold for S3 requests (500 ms), a second for a read through the CDN,
/// and for event delivery, which normally takes seconds, half the S3EventsDelayed alert's two
/// minutes.
pub fn slow_after(probe: Probe) -> f64 {
    match probe {
        Probe::Events => 60.0,
        Probe::Cdn => 1.0,
        _ => 0.5,
    }
}

/// Width of the strip and the sparkline: together with the other columns a target's table
/// fits a 1280 px screen.
const WIDTH: f64 = 200.0;
const HEIGHT: f64 = 14.0;
/// Width of one run in the strip.
const BAR: f64 = 2.0;

/// The horizontal position of a run that finished at `at`: the window's start is 0, `now` is
/// the right edge.
fn x(at: SystemTime, now: SystemTime, window: Duration) -> f64 {
    let age = now.duration_since(at).unwrap_or_default().as_secs_f64();
    (WIDTH * (1.0 - age / window.as_secs_f64())).clamp(0.0, WIDTH - BAR)
}

/// The strip: one bar per run, green passed, amber slow (passed, over `slow` seconds), red
/// failed; its label counts them, for screen readers and the tooltip.
pub fn strip(runs: &[Run], now: SystemTime, window: Duration, slow: f64) -> String {
    // One path per colour keeps a strip of 300 runs a few kilobytes.
    let mut paths = [String::new(), String::new(), String::new()];
    let mut counts = [0usize; 3];
    for r in runs {
        let kind = match (r.ok, r.seconds > slow) {
            (true, false) => 0,
            (true, true) => 1,
            (false, _) => 2,
        };
        counts[kind] += 1;
        let x = x(r.at, now, window);
        paths[kind].push_str(&format!("M{x:.1} 0h{BAR}v{HEIGHT}h-{BAR}z"));
    }
    let label = format!(
        "{} runs in {} min: {} passed, {} slow, {} failed (slow: over {})",
        runs.len(),
        window.as_secs() / 60,
        counts[0],
        counts[1],
        counts[2],
        humantime::format_duration(Duration::from_millis((slow * 1000.0) as u64))
    );
    let [ok, slow, failed] = paths;
    format!(
        "<svg class=\"strip\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{label}\"><title>{label}</title>\
<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#eee\"/>\
<path class=\"passed\" fill=\"#2e7d32\" d=\"{ok}\"/><path class=\"slow\" fill=\"#f9a825\" d=\"{slow}\"/><path class=\"failed\" fill=\"#c62828\" d=\"{failed}\"/></svg>"
    )
}

/// The sparkline of run durations over the window, scaled to the slowest run, which its label
/// names; empty without runs.
pub fn sparkline(runs: &[Run], now: SystemTime, window: Duration) -> String {
    let Some(max) = runs.iter().map(|r| r.seconds).reduce(f64::max) else {
        return String::new();
    };
    let top = max.max(0.001);
    let points: Vec<String> = runs
        .iter()
        .map(|r| {
            let y = HEIGHT - 1.0 - (r.seconds / top) * (HEIGHT - 2.0);
            format!("{:.1},{y:.1}", x(r.at, now, window) + BAR / 2.0)
        })
        .collect();
    let label = format!("duration of each run, slowest {:.1} ms", max * 1000.0);
    format!(
        "<svg class=\"spark\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{label}\"><title>{label}</title>\
<polyline fill=\"none\" stroke=\"#1565c0\" stroke-width=\"1\" points=\"{}\"/></svg>",
        points.join(" ")
    )
}

/// Width of the waterfall's bars (after its labels) and the height of one phase's row.
const FALL_WIDTH: f64 = 300.0;
const FALL_LABEL: f64 = 130.0;
const FALL_ROW: f64 = 14.0;

/// The phases of one request attempt as a waterfall: one row per phase that happened, its bar
/// starting where the previous ended, all scaled to the attempt's total; its label names every
/// phase's duration.
pub fn waterfall(p: &RequestPhases) -> String {
    let total = p.total().as_secs_f64().max(1e-6);
    let phases: Vec<(Phase, f64)> = p.observed().map(|(ph, d)| (ph, d.as_secs_f64())).collect();
    let height = FALL_ROW * phases.len() as f64;
    let width = FALL_LABEL + FALL_WIDTH;
    let mut rows = String::new();
    let mut start = 0.0;
    for (i, (phase, secs)) in phases.iter().enumerate() {
        let y = FALL_ROW * i as f64;
        let x = FALL_LABEL + FALL_WIDTH * start / total;
        let w = (FALL_WIDTH * secs / total).max(1.0);
        rows.push_str(&format!(
            "<text x=\"0\" y=\"{ty:.1}\" font-size=\"11\">{name} {ms:.1} ms</text>\
<rect class=\"phase-{name}\" x=\"{x:.1}\" y=\"{by:.1}\" width=\"{w:.1}\" height=\"{bh:.1}\" fill=\"{fill}\"/>",
            ty = y + FALL_ROW - 3.0,
            name = phase.as_str(),
            ms = secs * 1000.0,
            by = y + 2.0,
            bh = FALL_ROW - 4.0,
            fill = phase_colour(*phase),
        ));
        start += secs;
    }
    let label = phases
        .iter()
        .map(|(ph, s)| format!("{} {:.1} ms", ph.as_str(), s * 1000.0))
        .collect::<Vec<_>>()
        .join(", ");
    let label = format!(
        "phases of the attempt, {:.1} ms in all: {label}",
        total * 1000.0
    );
    format!(
        "<svg class=\"waterfall\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{label}\"><title>{label}</title>{rows}</svg>"
    )
}

/// A phase's colour: the network path in blues, the store's own time amber, the body green.
fn phase_colour(p: Phase) -> &'static str {
    match p {
        Phase::Dns => "#4527a0",
        Phase::Connect => "#1565c0",
        Phase::Tls => "#00838f",
        Phase::FirstByte => "#f9a825",
        Phase::Body => "#2e7d32",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(secs_ago: u64, ok: bool, seconds: f64, now: SystemTime) -> Run {
        Run {
            at: now - Duration::from_secs(secs_ago),
            ok,
            seconds,
        }
    }

    #[test]
    fn the_waterfall_draws_each_phase_after_the_one_before() {
        let p = RequestPhases {
            at: SystemTime::UNIX_EPOCH,
            new_connection: true,
            dns: None,
            connect: Some(Duration::from_millis(100)),
            tls: Some(Duration::from_millis(100)),
            first_byte: Some(Duration::from_millis(700)),
            body: Some(Duration::from_millis(100)),
            request_id: Some("R1".into()),
            tls_not_after: None,
        };
        let svg = waterfall(&p);
        assert!(
            svg.contains("aria-label=\"phases of the attempt, 1000.0 ms in all: connect 100.0 ms, tls 100.0 ms, first_byte 700.0 ms, body 100.0 ms\""),
            "{svg}"
        );
        // Four rows; no dns row (it did not happen); each bar starts where the last ended.
        assert!(!svg.contains("phase-dns"), "{svg}");
        assert!(
            svg.contains("class=\"phase-connect\" x=\"130.0\" y=\"2.0\" width=\"30.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"phase-tls\" x=\"160.0\" y=\"16.0\" width=\"30.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"phase-first_byte\" x=\"190.0\" y=\"30.0\" width=\"210.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"phase-body\" x=\"400.0\" y=\"44.0\" width=\"30.0\""),
            "{svg}"
        );
        assert!(svg.contains("height=\"56\""), "{svg}");
    }

    #[test]
    fn the_strip_places_runs_by_time_and_counts_each_kind() {
        let now = SystemTime::now();
        let w = Duration::from_secs(900);
        let runs = [
            run(900, true, 0.01, now),
            run(450, false, 0.01, now),
            run(30, true, 2.0, now),
            run(0, true, 0.02, now),
        ];
        let svg = strip(&runs, now, w, slow_after(Probe::Get));
        assert!(
            svg.contains("4 runs in 15 min: 2 passed, 1 slow, 1 failed (slow: over 500ms)"),
            "{svg}"
        );
        // Event delivery in 2 s is not slow.
        let events = strip(&runs, now, w, slow_after(Probe::Events));
        assert!(events.contains("3 passed, 0 slow, 1 failed"), "{events}");
        // The oldest at the left edge, the newest at the right, the failure in the middle.
        assert!(
            svg.contains("d=\"M0.0 0h2v14h-2zM198.0 0h2v14h-2z\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"failed\" fill=\"#c62828\" d=\"M100.0 0"),
            "{svg}"
        );
        assert_eq!(sparkline(&[], now, w), "");
        let spark = sparkline(&runs, now, w);
        assert!(spark.contains("slowest 2000.0 ms"), "{spark}");
        // The slowest run is at the top (y = 1), the others near the bottom.
        assert!(spark.contains(",1.0"), "{spark}");
    }
}
