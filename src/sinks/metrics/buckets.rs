//! The histogram buckets of the daemon's families, and why each set is what it is: buckets are
//! series, so every bound is one a shipped alert or dashboard reads, or the set says why not.

/// Latency buckets of S3 requests: 5 ms to 30 s in nine steps, with 500 ms (the GET latency
/// alert's threshold) among them. Same-region S3 answers a small PUT/GET in 10-100 ms; the top
/// end covers SDK timeouts. Nine, not more: with five operations they are 60 of a target's
/// series, and a scraper that asks for native histograms gets full resolution anyway.
pub const LATENCY_BUCKETS: &[f64] = &[0.005, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// Buckets of a probe step's duration: none but +Inf. A step's time is its requests' time
/// (per operation above) plus re-reads, so per probe the mean (`_sum` / `_count`) is what the
/// dashboard shows; six probes' buckets would be more than half of a target's series.
pub const PROBE_DURATION_BUCKETS: &[f64] = &[];

/// Staleness buckets: a violation lasts from one re-read (tens of ms) to the cycle timeout.
pub const STALENESS_BUCKETS: &[f64] =
    &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Replication lag buckets: 0.5 s to 1 h (S3 RTC promises 15 minutes for 99.99% of objects).
pub const REPLICATION_LAG_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];

/// Event notification delivery buckets: 0.1 s to 15 min (S3 delivers most within a second;
/// the events timeout defaults to 5 minutes), with 60 s (the delay alert's threshold) among
/// them. Nine, for two event kinds a target.
pub const EVENT_DELIVERY_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0, 300.0, 900.0];
