//! The native (exponential) buckets of a histogram, as the Prometheus data model defines them:
//! at schema `s` bucket `i` holds the values in (2^((i-1)/2^s), 2^(i/2^s)], values at or below
//! the zero threshold go to the zero bucket, and the buckets travel as spans and deltas.
//!
//! prometheus-client keeps the same state inside its histogram, but every histogram cell of the
//! daemon keeps its counts once, here, and hands them to prometheus-client's encoder (see
//! `cells/histogram.rs`); the request histogram, whose exemplars its encoder cannot be given,
//! has its protobuf message built from prometheus-client's own data model
//! (`Histogram::message`).

use std::time::SystemTime;

/// Schema 3: a bucket every 2^(1/8), about 9% wide (as every other native histogram here).
pub const SCHEMA: i32 = 3;
/// Most buckets kept: past it the schema is lowered (two buckets become one), never reset.
pub const MAX_BUCKETS: usize = 160;
/// The widest buckets the data model has (a factor of 65536 each): a histogram never gets
/// there from latencies, but its schema is not lowered past it.
const MIN_SCHEMA: i32 = -4;
/// Values at or below this are counted in the zero bucket (Prometheus' default, 2^-128).
pub const ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// Sparse positive buckets by index, the zero bucket and the schema they are at.
///
/// The buckets are a vector of (index, count) in index order: a latency series fills a few
/// neighbouring buckets, so a lookup is a short binary search, a new bucket is rare after the
/// first minutes, and a series costs 16 bytes a bucket (a map's node is 144 bytes at least; at
/// 1000 targets there are 18,000 of these).
#[derive(Debug, Clone)]
pub struct Native {
    pub schema: i32,
    pub zero: u64,
    buckets: Vec<(i32, u64)>,
    pub created: SystemTime,
}

impl Default for Native {
    fn default() -> Self {
        Native {
            schema: SCHEMA,
            zero: 0,
            buckets: Vec::new(),
            created: SystemTime::now(),
        }
    }
}

/// The index of `v`'s bucket at `schema`: the smallest `i` with `v <= 2^(i / 2^schema)`.
fn index(v: f64, schema: i32) -> i32 {
    let scale = f64::from(schema).exp2();
    let mut i = (v.log2() * scale).ceil() as i32;
    // log2 may be a hair off at a bucket's bounds: settle on the exact bound.
    let upper = |i: i32| (f64::from(i) / scale).exp2();
    if v > upper(i) {
        i += 1;
    } else if v <= upper(i - 1) {
        i -= 1;
    }
    i
}

impl Native {
    /// Counts one observation (negative and NaN values are not latencies: ignored).
    pub fn observe(&mut self, v: f64) {
        if v.is_nan() || v < 0.0 {
            return;
        }
        if v <= ZERO_THRESHOLD {
            self.zero += 1;
            return;
        }
        let i = index(v, self.schema);
        match self.buckets.binary_search_by_key(&i, |(i, _)| *i) {
            Ok(at) => self.buckets[at].1 += 1,
            Err(at) => self.buckets.insert(at, (i, 1)),
        }
        while self.buckets.len() > MAX_BUCKETS && self.schema > MIN_SCHEMA {
            self.reduce();
        }
    }

    /// Halves the resolution: bucket `i` at schema `s` is within bucket `ceil(i/2)` at `s-1`
    /// (neighbours in index order, so the merged vector stays in order).
    fn reduce(&mut self) {
        let mut wider: Vec<(i32, u64)> = Vec::with_capacity(self.buckets.len() / 2 + 1);
        for (i, n) in std::mem::take(&mut self.buckets) {
            let i = (i + 1) >> 1;
            match wider.last_mut() {
                Some((last, count)) if *last == i => *count += n,
                _ => wider.push((i, n)),
            }
        }
        self.buckets = wider;
        self.schema -= 1;
    }

    /// The positive buckets as spans (offset, length) and deltas, as the data model wants them.
    pub fn spans_and_deltas(&self) -> (Vec<(i32, u32)>, Vec<i64>) {
        let mut spans: Vec<(i32, u32)> = Vec::new();
        let mut deltas = Vec::with_capacity(self.buckets.len());
        let (mut next, mut last) = (None::<i32>, 0i64);
        for &(i, n) in &self.buckets {
            match (next, spans.last_mut()) {
                (Some(want), Some(span)) if want == i => span.1 += 1,
                (Some(want), _) => spans.push((i - want, 1)),
                (None, _) => spans.push((i, 1)),
            }
            next = Some(i + 1);
            deltas.push(n as i64 - last);
            last = n as i64;
        }
        (spans, deltas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_bucket_whose_upper_bound_is_inclusive() {
        assert_eq!(index(1.0, 3), 0);
        assert_eq!(index(2.0, 3), 8);
        assert_eq!(index(0.5, 3), -8);
        assert_eq!(index(1.0001, 3), 1);
        // 100 ms: 2^(-27/8) = 0.0962, 2^(-26/8) = 0.1051.
        assert_eq!(index(0.1, 3), -26);
        // Below schema 0 a bucket spans several doublings: 2^4 is bucket 1 at schema -2.
        assert_eq!(index(16.0, -2), 1);
        assert_eq!(index(17.0, -2), 2);
    }

    #[test]
    fn spans_and_deltas_encode_the_sparse_buckets() {
        let mut n = Native::default();
        for v in [1.0, 1.0, 1.05, 2.0, 0.0] {
            n.observe(v);
        }
        assert_eq!(n.zero, 1);
        let (spans, deltas) = n.spans_and_deltas();
        // Buckets 0 (2), 1 (1) and 8 (1): a span of two from 0, then one after a gap of 6.
        assert_eq!(spans, vec![(0, 2), (6, 1)]);
        assert_eq!(deltas, vec![2, -1, 0]);
    }

    #[test]
    fn too_many_buckets_lower_the_schema_and_lose_no_count() {
        let mut n = Native::default();
        let mut v = 1e-6;
        let mut count = 0;
        while v < 1e6 {
            n.observe(v);
            count += 1;
            v *= 1.05;
        }
        assert!(n.buckets.len() <= MAX_BUCKETS);
        assert!(n.schema < SCHEMA);
        assert_eq!(n.buckets.iter().map(|(_, n)| n).sum::<u64>(), count);
        assert!(n.buckets.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
