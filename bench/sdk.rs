//! CPU of a cycle next to the AWS SDK's own cost: s3canary's cycle (six probes, 13 requests,
//! verification, metrics and history), and a bare aws-sdk-s3 loop making the same 13 requests
//! with nothing around them, under several SDK settings. Each runs on a current-thread runtime
//! of its own thread, whose CPU time (CLOCK_THREAD_CPUTIME_ID) is the client's whole cost: the
//! embedded server runs on the main runtime, on other threads.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, IdentityCache, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use s3canary::embedded::EmbeddedS3;
use s3canary::report::{Sink, Sinks};
use s3canary::sinks::history::History;
use s3canary::sinks::metrics::Metrics;
use serde_json::json;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU seconds the calling thread has used.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Runs `work` (`cycles` times after 20 warm-up cycles) on a fresh thread with its own
/// current-thread runtime; the thread's CPU milliseconds per cycle. Nothing runs, and the
/// answer is NaN, when `only` names another contender.
async fn measure<F, Fut>(name: &str, only: Option<&str>, cycles: usize, work: F) -> f64
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    if only.is_some_and(|o| o != name) {
        return f64::NAN;
    }
    // Named, so a profiler can tell the contenders apart (perf report --comm).
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for _ in 0..20 {
                    work().await;
                }
                let start = thread_cpu();
                for _ in 0..cycles {
                    work().await;
                }
                (thread_cpu() - start) * 1000.0 / cycles as f64
            })
        })
        .unwrap();
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap()
}

/// SDK settings of a bare client.
#[derive(Clone, Copy, Debug)]
struct Settings {
    /// Checksums only when an operation requires them (s3canary's setting) instead of the
    /// SDK's default CRC32 on every upload and validation of every download.
    checksums_when_required: bool,
    stalled_stream_protection: bool,
    identity_cache: bool,
    /// s3canary's timeouts (connect 3 s, attempt half the cycle timeout, operation the cycle
    /// timeout) and retries (three attempts, 50 ms to 1 s backoff): the timers they arm on
    /// every request are part of the SDK's cost.
    timeouts: bool,
    /// The client s3canary builds for the target (its factory: the standard configuration
    /// chain, the shared HTTP client, the attempt recorder and body limit), the other
    /// settings ignored.
    factory: bool,
    /// The bare client sends through s3canary's timed connector (`s3::connect`) instead of the
    /// SDK's HTTP client: the cost of measuring each request's phases.
    timed: bool,
}

async fn client(endpoint: &str, t: &s3canary::config::Target, s: Settings) -> aws_sdk_s3::Client {
    if s.factory {
        return EmbeddedS3::client_factory()
            .bucket(t, Arc::new(Sinks::default()))
            .await
            .client;
    }
    let mut b = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(EmbeddedS3::credentials());
    if s.checksums_when_required {
        b = b
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    }
    if !s.stalled_stream_protection {
        b = b.stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    }
    if !s.identity_cache {
        b = b.identity_cache(IdentityCache::no_cache());
    }
    if s.timed {
        b = b.http_client(s3canary::s3::connect::TimedClient::new(&[]));
    }
    if s.timeouts {
        let cycle = Duration::from_secs(10);
        b = b
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(cycle / 2)
                    .operation_timeout(cycle)
                    .build(),
            )
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(s3canary::s3::MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(50))
                    .with_max_backoff(Duration::from_secs(1)),
            );
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

/// The 13 requests of a healthy cycle, in its order, with nothing checked: put, get, list,
/// overwrite (put, get), delete (delete, head, list), conditional (create, two refused
/// writes, an accepted If-Match) and the final delete.
async fn bare_cycle(c: &aws_sdk_s3::Client, bucket: &str, n: u64, body: Bytes) {
    let key = format!(
        "s3canary/bare/{n:013}-{:016x}",
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    );
    let put = |b: Bytes| {
        c.put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(b))
    };
    let get = || async {
        let o = c
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        o.body.collect().await.unwrap().into_bytes()
    };
    let list = || async {
        c.list_objects_v2()
            .bucket(bucket)
            .prefix(&key)
            .send()
            .await
            .unwrap()
    };
    let delete = || async {
        c.delete_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .unwrap()
    };
    put(body.clone()).send().await.unwrap();
    get().await;
    list().await;
    let mut other = body.to_vec();
    other[0] ^= 1;
    let etag = put(Bytes::from(other)).send().await.unwrap().e_tag;
    get().await;
    delete().await;
    let _ = c.head_object().bucket(bucket).key(&key).send().await;
    list().await;
    let first = put(body.clone()).if_none_match("*").send().await.unwrap();
    let _ = put(body.clone()).if_none_match("*").send().await;
    let _ = put(body.clone())
        .if_match(etag.unwrap_or_default())
        .send()
        .await;
    put(body)
        .if_match(first.e_tag.unwrap_or_default())
        .send()
        .await
        .unwrap();
    delete().await;
}

/// s3canary's cycle and bare SDK loops side by side, `cycles` each in every one of `rounds`;
/// with `only`, just that contender (`s3canary`, `bare-0`, ...), for a profiler: under
/// `valgrind --tool=callgrind --separate-threads=yes` its thread's instruction count is the
/// figure that machine noise does not move.
pub async fn compare(cycles: usize, rounds: usize, only: Option<&str>) -> serde_json::Value {
    let s3 = EmbeddedS3::start(&["bench"]).await.unwrap();
    let t = s3.target("cpu", "bench", "");
    let body = Bytes::from(vec![b'x'; t.object_size as usize]);

    // The requests of one s3canary cycle, as the server saw them.
    let before = s3.log.entries().len();
    {
        let b = EmbeddedS3::client_factory()
            .bucket(&t, Arc::new(Sinks::default()))
            .await;
        s3canary::probe::run_alone(&b, &t).await;
    }
    let ops: Vec<String> = s3.log.entries()[before..]
        .iter()
        .map(|a| format!("{:?}", a.op))
        .collect();

    let mut out = serde_json::Map::new();
    out.insert("cycle_ops".into(), json!(ops));
    // Rounds alternate the contenders, so drift in the machine's speed hits all of them; each
    // figure is the median of its rounds.
    let settings =
        |checksums_when_required, stalled_stream_protection, identity_cache, timeouts| Settings {
            checksums_when_required,
            stalled_stream_protection,
            identity_cache,
            timeouts,
            factory: false,
            timed: false,
        };
    let variants = [
        (
            "bare SDK, s3canary's settings (checksums when required, its timeouts and retries)",
            settings(true, true, true, true),
        ),
        (
            "bare SDK, SDK defaults (CRC32 on every upload, validated downloads)",
            settings(false, true, true, true),
        ),
        (
            "bare SDK, no stalled-stream protection",
            settings(true, false, true, true),
        ),
        (
            "bare SDK, no identity cache",
            settings(true, true, false, true),
        ),
        (
            "bare SDK, no timeouts or retry settings (SDK defaults)",
            settings(true, true, true, false),
        ),
        (
            "bare SDK, s3canary's settings, through s3canary's timed connector",
            Settings {
                timed: true,
                ..settings(true, true, true, true)
            },
        ),
        (
            "bare loop on s3canary's own client",
            Settings {
                factory: true,
                ..settings(true, true, true, true)
            },
        ),
    ];
    let mut ours = Vec::new();
    let mut bare: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _round in 0..rounds {
        let target = t.clone();
        ours.push(
            measure("s3canary", only, cycles, move || {
                let target = target.clone();
                async move {
                    let (b, sinks) = daemon_like(&target).await;
                    let report = s3canary::probe::run_alone(&b, &target).await;
                    sinks.cycle(&target.labels(), &report);
                }
            })
            .await,
        );
        for (i, (_, settings)) in variants.iter().enumerate() {
            let (endpoint, body, settings) = (s3.endpoint.clone(), body.clone(), *settings);
            let target = t.clone();
            let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
            // One client for all cycles, as an application keeps one.
            let once = Arc::new(tokio::sync::OnceCell::new());
            bare[i].push(
                measure(&format!("bare-{i}"), only, cycles, move || {
                    let (once, endpoint, target) = (once.clone(), endpoint.clone(), target.clone());
                    let body = body.clone();
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    async move {
                        let c = once
                            .get_or_init(|| client(&endpoint, &target, settings))
                            .await
                            .clone();
                        bare_cycle(&c, "bench", n, body).await
                    }
                })
                .await,
            );
        }
    }
    // The machine's speed drifts between rounds (a shared VM: ±15% round to round), so the
    // overhead is the median of each round's ratio of s3canary to a variant measured just
    // after it, not the ratio of the medians.
    let rows: Vec<_> = variants
        .iter()
        .zip(bare.iter())
        .map(|((name, _), v)| {
            let mut ratios: Vec<f64> = ours.iter().zip(v).map(|(o, b)| o / b).collect();
            let mut sorted = v.clone();
            json!({
                "variant": name,
                "ms_per_cycle": median(&mut sorted),
                "s3canary_ratio": median(&mut ratios),
                "rounds": v,
            })
        })
        .collect();
    out.insert("s3canary_rounds".into(), json!(ours.clone()));
    out.insert("s3canary_ms_per_cycle".into(), json!(median(&mut ours)));
    out.insert("bare".into(), json!(rows));
    out.insert("cycles".into(), json!(cycles));
    out.insert("rounds".into(), json!(rounds));
    json!({ "sdk": out })
}

thread_local! {
    static DAEMON: std::cell::RefCell<Option<(s3canary::s3::Bucket, Arc<Sinks>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The measuring thread's bucket client and sinks (metrics and history), built once, as the
/// daemon builds them once per target.
async fn daemon_like(t: &s3canary::config::Target) -> (s3canary::s3::Bucket, Arc<Sinks>) {
    if let Some(d) = DAEMON.with(|d| d.borrow().clone()) {
        return d;
    }
    let metrics = Arc::new(Metrics::new(&Default::default()));
    let list: Vec<Arc<dyn Sink>> = vec![metrics, Arc::new(History::default())];
    let sinks = Arc::new(Sinks::new(list));
    let b = EmbeddedS3::client_factory().bucket(t, sinks.clone()).await;
    sinks.target_added(&t.info());
    DAEMON.with(|d| *d.borrow_mut() = Some((b.clone(), sinks.clone())));
    (b, sinks)
}

/// CPU seconds this whole process has used (every thread, user and system).
fn process_cpu() -> f64 {
    // SAFETY: getrusage writes one rusage through a valid pointer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// The bare loop as a process of its own, what an application's monitoring thread would be:
/// one aws-sdk-s3 client with s3canary's settings, and for each of `buckets` (`b0000`, ...) the
/// 13 requests of a healthy cycle every `interval`, on the same multi-thread runtime
/// `s3canary run` uses. Counts the process's CPU and the cycles it finished from `warmup` to
/// `warmup + seconds`, as `bench/run.py` counts them for `s3canary run` from `/proc`.
pub async fn process_loop(
    endpoint: String,
    buckets: usize,
    interval: Duration,
    warmup: Duration,
    seconds: Duration,
) -> serde_json::Value {
    let t = s3canary::embedded::target_at(&endpoint, "cpu", "b0000", "");
    let c = client(
        &endpoint,
        &t,
        Settings {
            checksums_when_required: true,
            stalled_stream_protection: true,
            identity_cache: true,
            timeouts: true,
            factory: false,
            timed: false,
        },
    )
    .await;
    let body = Bytes::from(vec![b'x'; t.object_size as usize]);
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = tokio::time::Instant::now();
    let stop = start + warmup + seconds;
    let mut loops = Vec::new();
    for i in 0..buckets {
        let (c, body, done) = (c.clone(), body.clone(), done.clone());
        // Spread over the interval, as s3canary spreads its targets.
        let first = start + interval.mul_f64(i as f64 / buckets as f64);
        loops.push(tokio::spawn(async move {
            let bucket = format!("b{i:04}");
            let mut tick = tokio::time::interval_at(first, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            loop {
                if tick.tick().await >= stop {
                    return;
                }
                bare_cycle(&c, &bucket, n, body.clone()).await;
                n += 1;
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep_until(start + warmup).await;
    let (cpu0, cycles0) = (
        process_cpu(),
        done.load(std::sync::atomic::Ordering::Relaxed),
    );
    tokio::time::sleep_until(stop).await;
    let (cpu, cycles) = (
        process_cpu(),
        done.load(std::sync::atomic::Ordering::Relaxed),
    );
    for l in loops {
        let _ = l.await;
    }
    json!({ "cycles": cycles - cycles0, "cpu_seconds": cpu - cpu0 })
}
