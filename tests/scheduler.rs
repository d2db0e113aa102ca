//! The scheduler with paused tokio time: exact intervals, spread offsets, no overlap, skips
//! counted, and a hanging target that never delays another.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use s3canary::scheduler::{self, CLEANUP_GRACE, Schedule};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type Starts = Arc<Mutex<Vec<Instant>>>;

/// Runs a target loop whose cycles record their start and then run `body`.
fn spawn_loop<Fut>(
    schedule: Schedule,
    token: &CancellationToken,
    tracker: &TaskTracker,
    skipped: Arc<AtomicUsize>,
    body: impl Fn() -> Fut + Send + 'static,
) -> Starts
where
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let starts: Starts = Arc::default();
    let s = starts.clone();
    tokio::spawn(scheduler::run(
        schedule,
        token.clone(),
        tracker.clone(),
        move || {
            skipped.fetch_add(1, Ordering::Relaxed);
        },
        move |_deadline, _token| {
            s.lock().unwrap().push(Instant::now());
            body()
        },
    ));
    starts
}

#[tokio::test(start_paused = true)]
async fn cycles_start_at_offset_then_exactly_every_interval() {
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let t0 = Instant::now();
    let schedule = Schedule {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        offset: Duration::from_secs(7),
        confirm: Duration::ZERO,
    };
    let skipped = Arc::new(AtomicUsize::new(0));
    let starts = spawn_loop(schedule, &token, &tracker, skipped.clone(), || async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        true
    });
    tokio::time::sleep(Duration::from_secs(7 + 30 * 9) + Duration::from_millis(1)).await;
    token.cancel();
    let starts = starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 10);
    for (i, s) in starts.iter().enumerate() {
        assert_eq!(*s - t0, Duration::from_secs(7 + 30 * i as u64), "cycle {i}");
    }
    assert_eq!(skipped.load(Ordering::Relaxed), 0);
}

#[test]
fn offsets_spread_a_thousand_targets_over_the_interval() {
    let interval = Duration::from_secs(30);
    let offsets: Vec<Duration> = (0..1000)
        .map(|i| Schedule::spread(&format!("target-{i}"), interval, Duration::from_secs(10)).offset)
        .collect();
    assert!(offsets.iter().all(|o| *o < interval));
    // Ten buckets of 3 s each: a uniform spread puts ~100 in each; none is empty or crowded.
    let mut buckets = [0usize; 10];
    for o in &offsets {
        buckets[(o.as_secs_f64() / 3.0) as usize] += 1;
    }
    assert!(
        buckets.iter().all(|n| (50..=150).contains(n)),
        "{buckets:?}"
    );
    // Stable across restarts: the same name gets the same slot.
    assert_eq!(
        Schedule::spread("primary", interval, Duration::from_secs(10)).offset,
        Schedule::spread("primary", interval, Duration::from_secs(10)).offset
    );
}

#[tokio::test(start_paused = true)]
async fn a_cycle_still_running_makes_the_next_tick_a_counted_skip_never_an_overlap() {
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let schedule = Schedule {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(25),
        offset: Duration::ZERO,
        confirm: Duration::ZERO,
    };
    let active = Arc::new(AtomicUsize::new(0));
    let max_active = Arc::new(AtomicUsize::new(0));
    let skipped = Arc::new(AtomicUsize::new(0));
    let (a, m) = (active.clone(), max_active.clone());
    let starts = spawn_loop(schedule, &token, &tracker, skipped.clone(), move || {
        let (a, m) = (a.clone(), m.clone());
        async move {
            let now = a.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            // 25 s of work on a 10 s interval: the ticks at 10 s and 20 s find it running.
            tokio::time::sleep(Duration::from_secs(25)).await;
            a.fetch_sub(1, Ordering::SeqCst);
            true
        }
    });
    tokio::time::sleep(Duration::from_secs(95)).await;
    token.cancel();
    let starts = starts.lock().unwrap().len();
    // Starts at 0, 30, 60, 90; skips at 10, 20, 40, 50, 70, 80.
    assert_eq!(starts, 4);
    assert_eq!(skipped.load(Ordering::Relaxed), 6);
    assert_eq!(max_active.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_target_neither_delays_others_nor_blocks_itself_forever() {
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let interval = Duration::from_secs(5);
    let timeout = Duration::from_secs(4);
    let hang_skips = Arc::new(AtomicUsize::new(0));
    let hanging = spawn_loop(
        Schedule {
            interval,
            timeout,
            offset: Duration::ZERO,
            confirm: Duration::ZERO,
        },
        &token,
        &tracker,
        hang_skips.clone(),
        std::future::pending::<bool>,
    );
    let t0 = Instant::now();
    let healthy = spawn_loop(
        Schedule {
            interval,
            timeout,
            offset: Duration::from_secs(1),
            confirm: Duration::ZERO,
        },
        &token,
        &tracker,
        Arc::new(AtomicUsize::new(0)),
        || async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            true
        },
    );
    tokio::time::sleep(Duration::from_secs(61)).await;
    token.cancel();
    let healthy = healthy.lock().unwrap().clone();
    assert_eq!(healthy.len(), 12);
    for (i, s) in healthy.iter().enumerate() {
        assert_eq!(
            *s - t0,
            Duration::from_secs(1 + 5 * i as u64),
            "healthy cycle {i} drifted"
        );
    }
    // The hung cycle is abandoned at deadline + cleanup grace (4 s + 5 s = 9 s), so the hanging
    // target runs again at 10 s, 20 s, ... with the ticks in between skipped.
    let hung = hanging.lock().unwrap().clone();
    assert_eq!(CLEANUP_GRACE, Duration::from_secs(5));
    let offsets: Vec<u64> = hung.iter().map(|s| (*s - t0).as_secs()).collect();
    assert_eq!(offsets, vec![0, 10, 20, 30, 40, 50, 60]);
    assert_eq!(hang_skips.load(Ordering::Relaxed), 6);
}

/// A loop whose cycles take and answer what `script` says, in turn (then pass quickly).
fn scripted(
    schedule: Schedule,
    token: &CancellationToken,
    tracker: &TaskTracker,
    skipped: Arc<AtomicUsize>,
    script: Vec<(u64, bool)>,
) -> Starts {
    let script = Arc::new(Mutex::new(script.into_iter()));
    spawn_loop(schedule, token, tracker, skipped, move || {
        let (secs, passed) = script.lock().unwrap().next().unwrap_or((1, true));
        async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            passed
        }
    })
}

fn offsets(t0: Instant, starts: &Starts) -> Vec<u64> {
    let starts = starts.lock().unwrap();
    starts.iter().map(|s| (*s - t0).as_secs()).collect()
}

#[tokio::test(start_paused = true)]
async fn after_a_failed_cycle_cycles_run_at_the_confirm_interval_until_one_passes() {
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let t0 = Instant::now();
    let schedule = Schedule {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        offset: Duration::ZERO,
        confirm: Duration::from_secs(5),
    };
    let skipped = Arc::new(AtomicUsize::new(0));
    // Passes at 0; fails at 30, 35, 40; passes at 45; the grid resumes at 60 and 90. A failure
    // that outlasts the confirm interval (8 s, from 90) is followed as soon as it ends (98).
    let script = vec![
        (1, true),
        (1, false),
        (1, false),
        (1, false),
        (1, true),
        (1, true),
        (8, false),
        (1, true),
    ];
    let starts = scripted(schedule, &token, &tracker, skipped.clone(), script);
    tokio::time::sleep(Duration::from_secs(121)).await;
    token.cancel();
    assert_eq!(
        offsets(t0, &starts),
        vec![0, 30, 35, 40, 45, 60, 90, 98, 120]
    );
    assert_eq!(skipped.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_zero_confirm_interval_keeps_the_interval_through_failures() {
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let t0 = Instant::now();
    let schedule = Schedule {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        offset: Duration::from_secs(3),
        confirm: Duration::ZERO,
    };
    let skipped = Arc::new(AtomicUsize::new(0));
    let script = vec![(1, false), (1, false), (1, false)];
    let starts = scripted(schedule, &token, &tracker, skipped.clone(), script);
    tokio::time::sleep(Duration::from_secs(94)).await;
    token.cancel();
    assert_eq!(offsets(t0, &starts), vec![3, 33, 63, 93]);
}

#[tokio::test(start_paused = true)]
async fn a_target_failing_for_good_runs_one_cycle_per_confirm_interval_never_two_at_once() {
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let t0 = Instant::now();
    let schedule = Schedule {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        offset: Duration::ZERO,
        confirm: Duration::from_secs(5),
    };
    let skipped = Arc::new(AtomicUsize::new(0));
    let active = Arc::new(AtomicUsize::new(0));
    let max_active = Arc::new(AtomicUsize::new(0));
    let (a, m) = (active.clone(), max_active.clone());
    let starts = spawn_loop(schedule, &token, &tracker, skipped.clone(), move || {
        let (a, m) = (a.clone(), m.clone());
        async move {
            m.fetch_max(a.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(2)).await;
            a.fetch_sub(1, Ordering::SeqCst);
            false
        }
    });
    tokio::time::sleep(Duration::from_secs(60) + Duration::from_millis(1)).await;
    token.cancel();
    let got = offsets(t0, &starts);
    assert_eq!(got, (0..=12).map(|i| i * 5).collect::<Vec<u64>>());
    assert_eq!(max_active.load(Ordering::SeqCst), 1);
    assert_eq!(skipped.load(Ordering::Relaxed), 0);
}
