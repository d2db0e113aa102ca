//! The status page's pictures, drawn on the server as inline SVG (no JavaScript, no assets):
//! a strip of a probe's runs over the window, each coloured passed, slow or failed and placed
//! at the time it ran (so a gap is a gap), and a sparkline of their durations.

use std::time::{Duration, SystemTime};

use crate::report::Probe;
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
