//! The mirror's batching and aggregation, without CloudWatch.

use super::sender::estimated_size;
use super::*;

#[test]
fn batches_stay_within_the_api_limits() {
    let mut q: VecDeque<MetricDatum> = (0..2500)
        .map(|i| {
            MetricDatum::builder()
                .metric_name(format!("S3Consistency_Put_Latency{i}"))
                .set_values(Some((0..150).map(f64::from).collect()))
                .set_counts(Some(vec![1.0; 150]))
                .build()
        })
        .collect();
    let mut sizes = Vec::new();
    while !q.is_empty() {
        let b = next_batch(&mut q);
        assert!(b.len() <= MAX_DATUMS_PER_CALL);
        assert!(b.iter().map(estimated_size).sum::<usize>() <= MAX_BYTES_PER_CALL);
        sizes.push(b.len());
    }
    assert_eq!(sizes.iter().sum::<usize>(), 2500);
    assert!(
        sizes.len() > 3,
        "large datums must split by size: {sizes:?}"
    );
}

#[test]
fn long_value_lists_split_at_150_values() {
    let values: BTreeMap<u64, u32> = (0..400).map(|v| (v, 1)).collect();
    let d = values_datums(
        "x",
        &[],
        StandardUnit::Milliseconds,
        &values,
        10.0,
        DateTime::from_secs(0),
        60,
    );
    assert_eq!(
        d.iter().map(|d| d.values().len()).collect::<Vec<_>>(),
        vec![150, 150, 100]
    );
    assert_eq!(d[0].values()[1], 0.1);
}

#[test]
fn events_are_published_as_delivery_latency_and_lost_per_bucket() {
    let metrics = Arc::new(Metrics::new(&Default::default()));
    let m = Mirror::new(CloudWatchSection::default(), metrics);
    let t = TargetLabels {
        target: "t".into(),
        bucket: "b".into(),
        region: "us-east-1".into(),
    };
    let kind = crate::report::EventKind::ObjectCreated;
    m.event(&t, &EventReport::Expected(kind));
    for ms in [250, 250, 1500] {
        let after = Duration::from_millis(ms);
        let key = "k".to_string();
        m.event(&t, &EventReport::Delivered { kind, after, key });
    }
    m.event(
        &t,
        &EventReport::Lost {
            kind,
            key: "k".into(),
            after: Duration::from_secs(300),
        },
    );
    assert_eq!(m.flush(SystemTime::now()), 2);
    let q = m.queue.lock().unwrap();
    let latency = q
        .iter()
        .find(|d| d.metric_name() == Some("S3Consistency_Event_Delivery_Latency"))
        .unwrap();
    assert_eq!(latency.values(), &[0.25, 1.5]);
    assert_eq!(latency.counts(), &[2.0, 1.0]);
    assert_eq!(latency.unit(), Some(&StandardUnit::Seconds));
    let lost = q
        .iter()
        .find(|d| d.metric_name() == Some("S3Consistency_Event_Lost"))
        .unwrap();
    assert_eq!(lost.value(), Some(1.0));
    assert_eq!(lost.dimensions()[0].value(), Some("b"));
}

#[test]
fn the_clock_skew_and_the_credentials_time_left_are_the_latest_values() {
    let metrics = Arc::new(Metrics::new(&Default::default()));
    let m = Mirror::new(CloudWatchSection::default(), metrics);
    let t = TargetLabels {
        target: "t".into(),
        bucket: "b".into(),
        region: "eu-west-1".into(),
    };
    m.clock_skew(&t, 400);
    m.clock_skew(&t, -3);
    m.credentials(&t, None, 0);
    assert_eq!(m.flush(SystemTime::now()), 1, "static keys have no expiry");
    m.credentials(&t, Some(SystemTime::now() + Duration::from_secs(600)), 2);
    assert_eq!(m.flush(SystemTime::now()), 1);
    let q = m.queue.lock().unwrap();
    let value = |name: &str| {
        q.iter()
            .find(|d| d.metric_name() == Some(name))
            .and_then(|d| d.value())
            .unwrap()
    };
    assert_eq!(value("S3Consistency_ClockSkew"), -3.0);
    let left = value("S3Consistency_Credentials_ExpiresIn");
    assert!((598.0..=600.0).contains(&left), "{left}");
    let d = q.iter().next().unwrap();
    let dims: Vec<_> = d.dimensions().iter().filter_map(|x| x.name()).collect();
    assert_eq!(dims, ["BucketName", "Region"]);
}
