//! What a config costs: S3 requests and money per month, from the same cadence functions the
//! scheduler runs (`plan`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Config, Target};
use crate::replication::{MIN_GAP, STATUS_EVERY, next_gap};
use crate::report::Probe;
use crate::scheduler::{orphan_sweep_interval, replication_sweep_interval};

/// Seconds in the 30-day month that S3 and CloudWatch price by.
const MONTH: f64 = 30.0 * 24.0 * 3600.0;

/// Prices used by `plan` (S3 Standard and CloudWatch in us-east-1; override per region).
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    /// PUT, COPY, POST, LIST requests, per 1,000.
    pub put_per_1k: f64,
    /// GET, HEAD and other requests, per 1,000.
    pub get_per_1k: f64,
    /// One CloudWatch custom metric per month (first 10,000 metrics).
    pub cw_metric_month: f64,
    /// CloudWatch API requests (PutMetricData), per 1,000.
    pub cw_requests_per_1k: f64,
    /// SQS standard queue requests, per million (the first million a month are free).
    pub sqs_per_million: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            put_per_1k: 0.005,
            get_per_1k: 0.0004,
            cw_metric_month: 0.30,
            cw_requests_per_1k: 0.01,
            sqs_per_million: 0.40,
        }
    }
}

/// S3 requests by price class.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Requests {
    pub put: f64,
    pub list: f64,
    pub get: f64,
    pub head: f64,
    /// DELETE is free.
    pub delete: f64,
}

impl Requests {
    fn scaled(self, k: f64) -> Requests {
        Requests {
            put: self.put * k,
            list: self.list * k,
            get: self.get * k,
            head: self.head * k,
            delete: self.delete * k,
        }
    }

    fn add(&mut self, o: Requests) {
        self.put += o.put;
        self.list += o.list;
        self.get += o.get;
        self.head += o.head;
        self.delete += o.delete;
    }

    /// All requests.
    pub fn total(&self) -> f64 {
        self.put + self.list + self.get + self.head + self.delete
    }

    /// Monthly cost at `p`.
    pub fn cost(&self, p: &Prices) -> f64 {
        (self.put + self.list) / 1000.0 * p.put_per_1k
            + (self.get + self.head) / 1000.0 * p.get_per_1k
    }
}

/// Requests of one healthy cycle of `t` (the steps and the cleanup; re-reads happen only
/// during violations).
pub fn requests_per_cycle(t: &Target) -> Requests {
    let mut r = Requests::default();
    for p in &t.probes {
        match p {
            Probe::Put => r.put += 1.0,
            Probe::Get => r.get += 1.0,
            Probe::List => r.list += 1.0,
            Probe::Overwrite => {
                r.put += 1.0;
                r.get += 1.0;
            }
            Probe::Delete => {
                r.delete += 1.0;
                r.head += 1.0;
                r.list += 1.0;
            }
            Probe::Conditional => r.put += if t.runs(Probe::Delete) { 4.0 } else { 3.0 },
            // The checksummed PUT, its GET with checksum mode on, the wrong checksum refused.
            Probe::Checksum => {
                r.put += 2.0;
                r.get += 1.0;
            }
            // One upload per multipart interval, spread over the cycles between: create, the
            // parts, complete (all priced as PUTs), a ranged GET per part boundary, the delete.
            Probe::Multipart => {
                if let Some(m) = &t.multipart {
                    let share = t.interval.as_secs_f64() / m.interval.as_secs_f64();
                    let parts = f64::from(m.parts);
                    r.put += share * (parts + 2.0);
                    r.get += share * (parts - 1.0);
                    r.delete += share;
                }
            }
            // The notifications of the cycle's own writes: no S3 request (SQS is priced apart).
            Probe::Events => {}
            // CDN GETs go to the CDN; its requests to S3 are cache misses, priced by the CDN.
            Probe::Cdn => {}
            // One GET of the set a cycle, one LIST every `objects` cycles.
            Probe::Durability => {
                r.get += 1.0;
                r.list += t
                    .durability
                    .as_ref()
                    .map_or(0.0, |d| 1.0 / f64::from(d.objects));
            }
        }
    }
    // The canary is deleted at the end unless the delete step already did and nothing wrote
    // it again.
    if t.runs(Probe::Conditional) || t.runs(Probe::Checksum) || !t.runs(Probe::Delete) {
        r.delete += 1.0;
    }
    r
}

/// Destination and source HEADs for one replication canary whose copy appears after `lag`.
pub fn replication_heads(lag: Duration) -> (u32, u32) {
    let mut t = MIN_GAP;
    let mut heads = 1;
    while t < lag {
        t += next_gap(t);
        heads += 1;
    }
    (heads, heads / STATUS_EVERY)
}

/// One line of the plan.
#[derive(Debug, Clone)]
pub struct Line {
    pub what: String,
    pub per_month: Requests,
}

/// Monthly requests of every target and replication pair (probes, sweeps, canaries), assuming
/// replication copies appear after `lag`.
pub fn monthly(cfg: &Config, lag: Duration) -> Vec<Line> {
    let mut lines = Vec::new();
    for t in &cfg.targets {
        let cycles = MONTH / t.interval.as_secs_f64();
        let mut r = requests_per_cycle(t).scaled(cycles);
        let sweeps = MONTH / orphan_sweep_interval(t).as_secs_f64();
        r.list += sweeps;
        // The multipart upload sweep: one ListMultipartUploads (priced as a LIST) as often.
        if t.runs(Probe::Multipart) {
            r.list += sweeps;
        }
        lines.push(Line {
            what: format!("target {}", t.name),
            per_month: r,
        });
    }
    for rep in &cfg.replications {
        let canaries = MONTH / rep.interval.as_secs_f64();
        let (dst_heads, src_heads) = replication_heads(lag.min(rep.timeout));
        let sweeps = MONTH / replication_sweep_interval(rep).as_secs_f64();
        lines.push(Line {
            what: format!("replication {}", rep.name),
            per_month: Requests {
                put: canaries,
                list: 2.0 * sweeps,
                get: 0.0,
                head: canaries * f64::from(dst_heads + src_heads),
                delete: 2.0 * canaries,
            },
        });
    }
    lines
}

/// The extra cycles per hour and their cost while `t` fails and its cycles run every
/// `confirm_interval` instead of every interval; None when confirming is off. Priced as
/// healthy cycles: a failing cycle usually stops at its first failed step, so this is an upper
/// bound except for the re-reads that measure a stale view.
pub fn confirm_cost_per_hour(t: &Target, prices: &Prices) -> Option<(f64, f64)> {
    if t.confirm_interval.is_zero() || t.confirm_interval >= t.interval {
        return None;
    }
    let extra = 3600.0 / t.confirm_interval.as_secs_f64() - 3600.0 / t.interval.as_secs_f64();
    Some((extra, requests_per_cycle(t).scaled(extra).cost(prices)))
}

/// Event notifications one healthy cycle of `t` causes: one per acknowledged write (put,
/// overwrite, and the conditional step's re-create and matching update) and delete.
pub fn notifications_per_cycle(t: &Target) -> (f64, f64) {
    let mut created = 0.0;
    for p in &t.probes {
        created += match p {
            Probe::Put | Probe::Overwrite => 1.0,
            Probe::Conditional if t.runs(Probe::Delete) => 2.0,
            Probe::Conditional => 1.0,
            _ => 0.0,
        };
    }
    (created, requests_per_cycle(t).delete)
}

/// GETs through the CDN in one healthy cycle: before the put, after it, after the overwrite.
pub fn cdn_gets_per_cycle(t: &Target) -> f64 {
    if !t.runs(Probe::Cdn) {
        return 0.0;
    }
    2.0 + if t.runs(Probe::Overwrite) { 1.0 } else { 0.0 }
}

/// The multipart probe's uploads a month and the bytes they send and read back: `(uploads,
/// bytes uploaded, bytes read)`; None without the probe. Reads are the ranged GETs across
/// each part boundary.
pub fn multipart_monthly(t: &Target) -> Option<(f64, f64, f64)> {
    let m = t.multipart.as_ref().filter(|_| t.runs(Probe::Multipart))?;
    let uploads = MONTH / m.interval.as_secs_f64();
    let up = m.object_bytes(t.object_size) as f64;
    let read = f64::from(m.parts - 1) * 2.0 * crate::multipart::AROUND as f64;
    Some((uploads, uploads * up, uploads * read))
}

/// SQS requests a month on each events queue: a long poll every 20 s while idle, and at most
/// one receive and one batch delete per notification (fewer when they arrive together).
pub fn sqs_monthly(cfg: &Config) -> Vec<(String, f64, f64)> {
    let mut queues: BTreeMap<String, f64> = BTreeMap::new();
    for t in cfg.targets.iter().filter(|t| t.events.is_some()) {
        let (c, r) = notifications_per_cycle(t);
        let per_month = (c + r) * MONTH / t.interval.as_secs_f64();
        let name = t.events.as_ref().map_or("", |e| e.queue_name()).to_string();
        *queues.entry(name).or_default() += per_month;
    }
    let polls = MONTH / 20.0;
    queues
        .into_iter()
        .map(|(q, notifications)| (q, notifications, polls + 2.0 * notifications))
        .collect()
}

/// CloudWatch custom metrics the mirror publishes: SuccessRate and Latency per target and
/// step probe, Event_Delivery_Latency and Event_Lost for the events probe, ClockSkew per
/// target, Replication_Lag and Replication_Pending per pair (and Credentials_ExpiresIn per
/// target with temporary credentials, which the config does not tell).
pub fn cloudwatch_metrics(cfg: &Config) -> usize {
    cfg.targets
        .iter()
        .map(|t| 2 * t.probes.len() + 1)
        .sum::<usize>()
        + 2 * cfg.replications.len()
}

mod render;

pub use render::render;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        crate::config::parse(
            &format!("[[target]]\nname = \"a\"\nbucket = \"b-1\"\nregion = \"us-east-1\"\n{extra}"),
            std::path::Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn a_full_cycle_is_thirteen_requests() {
        let r = requests_per_cycle(&cfg("").targets[0]);
        assert_eq!(
            r,
            Requests {
                put: 6.0,
                list: 2.0,
                get: 2.0,
                head: 1.0,
                delete: 2.0
            }
        );
        let r = requests_per_cycle(&cfg("probes = [\"put\", \"get\"]").targets[0]);
        assert_eq!(
            r,
            Requests {
                put: 1.0,
                get: 1.0,
                delete: 1.0,
                ..Default::default()
            }
        );
        let r = requests_per_cycle(&cfg("probes = [\"put\", \"delete\"]").targets[0]);
        assert_eq!(
            r,
            Requests {
                put: 1.0,
                delete: 1.0,
                head: 1.0,
                list: 1.0,
                ..Default::default()
            }
        );
    }

    #[test]
    fn default_target_costs_about_3_56_a_month() {
        let lines = monthly(&cfg(""), Duration::from_secs(10));
        let probes = requests_per_cycle(&cfg("").targets[0]).scaled(86_400.0);
        assert!((probes.cost(&Prices::default()) - 3.5597).abs() < 0.001);
        // Plus one sweep LIST every 30 minutes.
        assert_eq!(lines[0].per_month.list, 2.0 * 86_400.0 + 1440.0);
    }

    #[test]
    fn a_multipart_upload_every_ten_minutes_is_priced_with_its_bytes() {
        let c = cfg(
            "probes = [\"put\", \"multipart\"]\n[target.multipart]\nparts = 3\npart_size = \"5MiB\"",
        );
        let t = &c.targets[0];
        // 4,320 uploads a month of 5 + 5 MiB + the 1 KiB last part; 16 bytes each side of 2
        // boundaries read back.
        let (uploads, up, read) = multipart_monthly(t).unwrap();
        assert_eq!(uploads, 4320.0);
        assert_eq!(up, 4320.0 * (10.0 * 1024.0 * 1024.0 + 1024.0));
        assert_eq!(read, 4320.0 * 64.0);
        // Per 30 s cycle: a twentieth of an upload's create, 3 parts and complete, 2 ranged
        // GETs and a delete; a ListMultipartUploads beside every orphan sweep.
        let lines = monthly(&c, Duration::from_secs(10));
        let r = lines[0].per_month;
        assert!((r.put - (86_400.0 + 4320.0 * 5.0)).abs() < 1e-6, "{r:?}");
        assert!((r.get - 4320.0 * 2.0).abs() < 1e-6, "{r:?}");
        assert!((r.list - 2.0 * 1440.0).abs() < 1e-6, "{r:?}");
        assert!(render(&c, &Prices::default(), Duration::from_secs(10)).contains("NAT gateway"));
        assert!(multipart_monthly(&cfg("").targets[0]).is_none());
    }

    #[test]
    fn confirming_costs_the_extra_cycles_only_while_failing() {
        let c = cfg("");
        let t = &c.targets[0];
        // 5 s instead of 30 s: 720 - 120 = 600 more cycles an hour, priced as healthy cycles.
        let (extra, usd) = confirm_cost_per_hour(t, &Prices::default()).unwrap();
        assert_eq!(extra, 600.0);
        let per_cycle = requests_per_cycle(t).cost(&Prices::default());
        assert!((usd - 600.0 * per_cycle).abs() < 1e-9);
        assert!(
            render(&c, &Prices::default(), Duration::from_secs(10))
                .contains("every 5s instead of every 30s: up to 600 more cycles")
        );
        let off = cfg("confirm_interval = \"0s\"");
        assert!(confirm_cost_per_hour(&off.targets[0], &Prices::default()).is_none());
    }

    #[test]
    fn the_events_queue_is_priced_per_notification_and_idle_poll() {
        let events = "probes = [\"put\", \"get\", \"list\", \"overwrite\", \"delete\", \"conditional\", \"events\"]\n\
            [target.events]\nqueue_url = \"https://sqs.us-east-1.amazonaws.com/123456789012/q\"";
        let c = cfg(events);
        // put, overwrite, the conditional re-create and update; the delete step and cleanup.
        assert_eq!(notifications_per_cycle(&c.targets[0]), (4.0, 2.0));
        let q = sqs_monthly(&c);
        assert_eq!(q.len(), 1);
        let (name, notifications, requests) = &q[0];
        assert_eq!(name, "q");
        assert_eq!(*notifications, 6.0 * 86_400.0);
        assert_eq!(*requests, 129_600.0 + 2.0 * 6.0 * 86_400.0);
        assert!(sqs_monthly(&cfg("")).is_empty());
    }
}
