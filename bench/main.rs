//! Measurements for `scripts/bench`, each printed as one JSON object on stdout.
//!
//!   bench overhead SAMPLES          reported minus injected latency, at 0 and 20 ms injected
//!   bench schedule TARGETS SECONDS  start-time lateness of TARGETS loops with 1 s intervals
//!   bench scrape TARGETS...         series per target, /metrics size and render time at each
//!                                   number of targets
//!   bench shards TARGETS MAX        rendezvous split of TARGETS over 1..MAX shards: balance,
//!                                   share moved when a shard is added
//!   bench sdk CYCLES ROUNDS [ONLY]  CPU of s3canary's cycle next to a bare aws-sdk-s3 loop of
//!                                   the same requests, and of SDK settings, in alternating
//!                                   rounds; ONLY (s3canary, bare-0, ...) runs one, to profile
//!   bench bare-loop ENDPOINT BUCKETS INTERVAL_MS WARMUP_MS MEASURE_MS
//!                                   the bare loop as a process of its own: BUCKETS (b0000...)
//!                                   each cycled every INTERVAL_MS; its CPU and cycles in the
//!                                   measured window, next to `s3canary run`'s from /proc
//!   bench replication LAG_SECS...   measured vs simulated replication lag, HEADs per canary
//!   bench events SECONDS DELAY_MS...  notification delivery time measured vs delivered after a
//!                                   known delay (the embedded queue), SQS requests per cycle
//!   bench server BUCKETS            an embedded S3 server with BUCKETS buckets (b0000...),
//!                                   prints its endpoint, runs until stdin closes
//!   bench hostile endless|message   a hostile endpoint (endless GetObject body, or 20 MB error
//!                                   messages), prints its endpoint, runs until stdin closes
//!
//! Everything runs on 127.0.0.1 and stops by itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

mod scale;
mod sdk;

use s3canary::embedded::{EmbeddedS3, FaultConfig, Op, hostile};
use s3canary::report::Sink;
use s3canary::sinks::metrics::Metrics;
use serde_json::json;

// The same helpers as the integration tests: a factory with the embedded server's credentials,
// a checked target on it, one cycle with the target's deadline.
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Reported GET-step duration minus the latency injected on GetObject.
async fn overhead(samples: usize) -> serde_json::Value {
    // The server runs on its own runtime (its own thread), as a real S3 would be elsewhere: on
    // the daemon's runtime its tasks would queue with the client's and count as client time.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let s3 = server_rt
        .spawn(EmbeddedS3::start(&["bench"]))
        .await
        .unwrap()
        .unwrap();
    let metrics = Arc::new(Metrics::new(&Default::default()));
    let t = s3.target("bench", "bench", "probes = [\"put\", \"get\"]");
    let b = EmbeddedS3::client_factory()
        .bucket(&t, metrics.clone())
        .await;
    // The GetObject attempt latency s3canary records (s3canary_s3_request_duration_seconds).
    let attempt =
        metrics
            .request_duration
            .with_label_values(&["bench", "bench", "us-east-1", "GetObject"]);
    let mut out = serde_json::Map::new();
    for injected_ms in [0u64, 20] {
        // Every request is delayed; the get step (one GetObject and the body check) is what
        // s3canary reports for a read.
        s3.faults.set_all(FaultConfig {
            latency: Duration::from_millis(injected_ms),
            ..Default::default()
        });
        let mut over = Vec::with_capacity(samples);
        let mut client = Vec::with_capacity(samples);
        let mut server = Vec::with_capacity(samples);
        let mut request = Vec::with_capacity(samples);
        let mut request_client = Vec::with_capacity(samples);
        for i in 0..samples + 20 {
            s3.timings.take();
            let before = attempt.sum();
            let r = s3canary::probe::run_alone(&b, &t).await;
            let get = r
                .results
                .iter()
                .find(|x| x.probe.as_str() == "get")
                .unwrap();
            // The server's own time for the GetObject, injected latency included.
            let served = s3
                .timings
                .take()
                .into_iter()
                .find(|(op, _)| *op == Op::GetObject)
                .map(|(_, d)| d.as_secs_f64() * 1000.0)
                .expect("the get step sent one GetObject");
            // The first 20 cycles warm connections and caches up.
            if i >= 20 {
                let reported = get.duration.as_secs_f64() * 1000.0;
                over.push(reported - injected_ms as f64);
                client.push(reported - served);
                server.push(served - injected_ms as f64);
                let recorded = (attempt.sum() - before) * 1000.0;
                request.push(recorded - injected_ms as f64);
                request_client.push(recorded - served);
            }
        }
        for v in [
            &mut over,
            &mut client,
            &mut server,
            &mut request,
            &mut request_client,
        ] {
            v.sort_by(f64::total_cmp);
        }
        out.insert(
            format!("injected_{injected_ms}ms"),
            json!({
                "samples": over.len(),
                "p50_ms": pct(&over, 0.5), "p99_ms": pct(&over, 0.99), "max_ms": over.last(),
                // What s3canary and loopback add: reported minus the server's own time.
                "client_p50_ms": pct(&client, 0.5), "client_p99_ms": pct(&client, 0.99),
                // The embedded server's own work (SigV4 check, file read), injection excluded.
                "server_p50_ms": pct(&server, 0.5), "server_p99_ms": pct(&server, 0.99),
                // The per-attempt request latency (from just before transmitting to the
                // response), minus the injected delay and minus the server's own time.
                "request_p50_ms": pct(&request, 0.5), "request_p99_ms": pct(&request, 0.99),
                "request_client_p50_ms": pct(&request_client, 0.5),
                "request_client_p99_ms": pct(&request_client, 0.99),
            }),
        );
    }
    drop(s3);
    server_rt.shutdown_background();
    json!({"overhead": out})
}

/// Lateness of cycle starts: the scheduler's own loops, no-op cycles, real time.
async fn schedule(targets: usize, seconds: u64) -> serde_json::Value {
    let token = CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    let late: Arc<Mutex<Vec<f64>>> = Arc::default();
    let t0 = Instant::now();
    for i in 0..targets {
        let sched = s3canary::scheduler::Schedule::spread(
            &format!("target-{i}"),
            Duration::from_secs(1),
            Duration::from_millis(900),
        );
        let late = late.clone();
        let start = t0 + sched.offset;
        let n = Arc::new(Mutex::new(0u32));
        tokio::spawn(s3canary::scheduler::run(
            sched,
            token.clone(),
            tracker.clone(),
            || {},
            move |_deadline, _t| {
                let mut k = n.lock().unwrap();
                let due = start + Duration::from_secs(u64::from(*k));
                *k += 1;
                late.lock()
                    .unwrap()
                    .push(due.elapsed().as_secs_f64() * 1000.0);
                async { true }
            },
        ));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    token.cancel();
    let mut v = late.lock().unwrap().clone();
    v.sort_by(f64::total_cmp);
    json!({"schedule": {"targets": targets, "interval_s": 1, "starts": v.len(),
        "lateness_p50_ms": pct(&v, 0.5), "lateness_p99_ms": pct(&v, 0.99), "lateness_max_ms": v.last()}})
}

/// Measured vs simulated lag, one canary per lag, all at once.
async fn replication(lags: Vec<f64>) -> serde_json::Value {
    let s3 = EmbeddedS3::with_lagged_pairs(&lags).await.unwrap();
    let metrics = Arc::new(Metrics::new(&Default::default()));
    let mut runs = Vec::new();
    for (i, lag) in lags.iter().enumerate() {
        let pair = (format!("src{i}"), format!("dst{i}"));
        let m = s3
            .replication_monitor(
                &format!("r{i}"),
                (&pair.0, &pair.1),
                (Duration::from_secs(3600), Duration::from_secs(900)),
                metrics.clone(),
            )
            .await;
        let lag = *lag;
        runs.push(tokio::spawn(async move {
            (lag, m.run_canary(&CancellationToken::new()).await)
        }));
    }
    let mut out = Vec::new();
    for r in runs {
        let (lag, o) = r.await.unwrap();
        if let s3canary::replication::CanaryOutcome::Replicated {
            lag: measured,
            heads,
        } = o
        {
            let err = measured.as_secs_f64() - lag;
            out.push(json!({"simulated_s": lag, "measured_s": measured.as_secs_f64(), "error_ms": err * 1000.0,
                "allowed_ms": (0.1f64).max(0.05 * lag) * 1000.0, "destination_heads": heads,
                "source_heads": heads / s3canary::replication::STATUS_EVERY}));
        } else {
            out.push(json!({"simulated_s": lag, "outcome": format!("{o:?}")}));
        }
    }
    json!({"replication": out})
}

/// Delivery times the events probe measures against notifications the embedded server delivers
/// exactly `delay` after the change, one cycle a second for `seconds`; and the SQS requests it
/// made, per cycle and while idle.
async fn events(seconds: u64, delays_ms: Vec<u64>) -> serde_json::Value {
    #[derive(Default)]
    struct Delivered(Mutex<Vec<f64>>);
    impl Sink for Delivered {
        fn event(&self, _t: &s3canary::report::TargetLabels, r: &s3canary::report::EventReport) {
            if let s3canary::report::EventReport::Delivered { after, .. } = r {
                self.0.lock().unwrap().push(after.as_secs_f64());
            }
        }
    }
    let mut out = Vec::new();
    for delay in delays_ms {
        let s3 = EmbeddedS3::start(&["events"]).await.unwrap();
        let queue_url = format!("{}/000000000000/events", s3.endpoint);
        let extra = format!(
            "interval = \"2s\"\ntimeout = \"1s\"\nprobes = [\"put\", \"get\", \"list\", \"overwrite\", \"delete\", \"conditional\", \"events\"]\n\
             [target.events]\nqueue_url = \"{queue_url}\"\nendpoint = \"{}\"\ntimeout = \"1m\"",
            s3.endpoint
        );
        let t = s3.target("ev", "events", &extra);
        s3.queues.notify(s3canary::embedded::queue::NotifyRule {
            bucket: "events".into(),
            prefix: t.canary_prefix(),
            queue: "events".into(),
            delay: s3canary::embedded::Lag::Fixed(Duration::from_millis(delay)),
        });
        let delivered = Arc::new(Delivered::default());
        let factory = EmbeddedS3::client_factory();
        let mut bucket = factory.bucket(&t, delivered.clone()).await;
        let ledger = Arc::new(s3canary::events::Ledger::new(
            t.labels(),
            t.canary_prefix(),
            Duration::from_secs(60),
            delivered.clone(),
        ));
        bucket.changes = Some(ledger.clone());
        let route = s3canary::events::consumer::Route {
            bucket: "events".into(),
            prefix: t.prefix.clone(),
            ledger,
        };
        let client = factory.sqs("us-east-1", Some(&s3.endpoint), None).await;
        let token = CancellationToken::new();
        let consumer = s3canary::events::Consumer::new(
            client,
            s3canary::s3::client::sqs_peer("us-east-1", Some(&s3.endpoint)),
            &queue_url,
            "events",
            vec![route],
            delivered.clone(),
        );
        tokio::spawn(consumer.run(token.clone()));
        let start = Instant::now();
        let mut cycles = 0u64;
        while start.elapsed() < Duration::from_secs(seconds) {
            let next = Instant::now() + Duration::from_secs(1);
            s3canary::probe::run_alone(&bucket, &t).await;
            cycles += 1;
            tokio::time::sleep_until(next).await;
        }
        // The last notifications, then an idle minute's worth of long polls is not waited for:
        // idle cost is three receives a minute by construction (20 s polls).
        tokio::time::sleep(Duration::from_millis(delay + 1500)).await;
        token.cancel();
        let requests = s3.queues.requests();
        let total: u64 = requests.values().sum();
        let mut err: Vec<f64> = delivered
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|d| (d - delay as f64 / 1000.0) * 1000.0)
            .collect();
        err.sort_by(f64::total_cmp);
        out.push(json!({"delay_ms": delay, "notifications": err.len(), "cycles": cycles,
            "error_p50_ms": pct(&err, 0.5), "error_p99_ms": pct(&err, 0.99),
            "error_min_ms": err.first(), "sqs_requests": requests, "sqs_requests_per_cycle": total as f64 / cycles as f64}));
        s3.stop();
    }
    json!({"events": out})
}

async fn server(buckets: usize) {
    let names: Vec<String> = (0..buckets).map(|i| format!("b{i:04}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let s3 = EmbeddedS3::start(&refs).await.unwrap();
    println!("{}", s3.endpoint);
    // Runs until the parent closes stdin.
    let mut buf = String::new();
    let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut buf)).await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize, d: u64| args.get(i).and_then(|x| x.parse().ok()).unwrap_or(d);
    let out = match args.first().map(String::as_str) {
        Some("overhead") => overhead(n(1, 200) as usize).await,
        Some("schedule") => schedule(n(1, 1000) as usize, n(2, 10)).await,
        Some("scrape") => {
            scale::scrape(args[1..].iter().filter_map(|x| x.parse().ok()).collect()).await
        }
        Some("shards") => scale::shards(n(1, 10_000) as usize, n(2, 16) as u32),
        Some("sdk") => {
            sdk::compare(
                n(1, 200) as usize,
                n(2, 11) as usize,
                args.get(3).map(String::as_str),
            )
            .await
        }
        Some("bare-loop") => {
            let ms = |i, d| std::time::Duration::from_millis(n(i, d));
            sdk::process_loop(
                args.get(1).cloned().unwrap_or_default(),
                n(2, 1) as usize,
                ms(3, 1000),
                ms(4, 5000),
                ms(5, 20_000),
            )
            .await
        }
        Some("replication") => {
            replication(args[1..].iter().filter_map(|x| x.parse().ok()).collect()).await
        }
        Some("events") => {
            events(
                n(1, 30),
                args[2..].iter().filter_map(|x| x.parse().ok()).collect(),
            )
            .await
        }
        Some("server") => {
            server(n(1, 1) as usize).await;
            return;
        }
        Some("hostile") => {
            let answer = match args.get(1).map(String::as_str) {
                Some("endless") => hostile::Answer::EndlessBody,
                _ => hostile::Answer::ErrorMessage("A".repeat(20 << 20)),
            };
            let h = hostile::start(answer).await;
            println!("{}", h.endpoint);
            let mut buf = String::new();
            let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut buf)).await;
            return;
        }
        _ => {
            eprintln!(
                "usage: bench overhead|schedule|scrape|shards|sdk|bare-loop|replication|events|server|hostile ..."
            );
            std::process::exit(2);
        }
    };
    println!("{out}");
}
