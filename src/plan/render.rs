//! The `plan` command's text: requests, bytes, series and dollars per month, per target.

use std::fmt::Write;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::config::Config;

fn fmt_n(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The `plan` report.
pub fn render(cfg: &Config, prices: &Prices, lag: Duration) -> String {
    let mut out = String::new();
    let lines = monthly(cfg, lag);
    let _ = writeln!(
        out,
        "{:<32} {:>12} {:>12} {:>12} {:>12} {:>12} {:>14}",
        "WHAT", "PUT", "LIST", "GET", "HEAD", "DELETE", "USD/MONTH"
    );
    let mut total = Requests::default();
    for l in &lines {
        let r = l.per_month;
        let _ = writeln!(
            out,
            "{:<32} {:>12} {:>12} {:>12} {:>12} {:>12} {:>14.2}",
            l.what,
            fmt_n(r.put),
            fmt_n(r.list),
            fmt_n(r.get),
            fmt_n(r.head),
            fmt_n(r.delete),
            r.cost(prices)
        );
        total.add(r);
    }
    let _ = writeln!(
        out,
        "{:<32} {:>12} {:>12} {:>12} {:>12} {:>12} {:>14.2}",
        "total S3",
        fmt_n(total.put),
        fmt_n(total.list),
        fmt_n(total.get),
        fmt_n(total.head),
        fmt_n(total.delete),
        total.cost(prices)
    );
    let _ = writeln!(
        out,
        "\nS3 requests per month: {} (30-day month; healthy cycles; re-reads during violations add a few GET/LIST).",
        fmt_n(total.total())
    );
    let _ = writeln!(
        out,
        "Prices: ${}/1k PUT+LIST, ${}/1k GET+HEAD, DELETE free (S3 Standard, us-east-1; override with --put-price and --get-price).",
        prices.put_per_1k, prices.get_per_1k
    );
    let custom: Vec<&str> = cfg
        .targets
        .iter()
        .filter(|t| t.endpoint.is_some())
        .map(|t| t.name.as_str())
        .collect();
    if !custom.is_empty() {
        let _ = writeln!(
            out,
            "Targets with a custom endpoint ({}): their USD are AWS's prices, which an S3-compatible store may not charge; the request counts hold.",
            custom.join(", ")
        );
    }
    if !cfg.replications.is_empty() {
        let (d, s) = replication_heads(lag);
        let _ = writeln!(
            out,
            "Replication assumes copies appear after {} ({d} destination + {s} source HEADs per canary; --replication-lag to change).",
            humantime::format_duration(lag)
        );
    }
    for t in cfg
        .targets
        .iter()
        .filter(|t| t.cdn.is_some() && t.runs(Probe::Cdn))
    {
        let gets = cdn_gets_per_cycle(t) * MONTH / t.interval.as_secs_f64();
        let _ = writeln!(
            out,
            "CDN of target {}: {} GETs a month through it (re-reads during stale views add a few); priced by the CDN.",
            t.name,
            fmt_n(gets)
        );
    }
    for t in &cfg.targets {
        let Some((uploads, up, read)) = multipart_monthly(t) else {
            continue;
        };
        let _ = writeln!(
            out,
            "Multipart of target {}: {} uploads a month, {:.1} GiB uploaded and {:.0} KiB read back; transfer into S3 is free, but through a NAT gateway every byte is charged (about $0.045/GB processed): reach S3 through a VPC gateway endpoint.",
            t.name,
            fmt_n(uploads),
            up / f64::from(1u32 << 30),
            read / 1024.0
        );
    }
    for (queue, notifications, requests) in sqs_monthly(cfg) {
        let _ = writeln!(
            out,
            "Events queue {queue}: {} notifications a month; at most {} SQS requests (long polls every 20 s, a receive and a batch delete per notification): ${:.2}/month at ${}/million (before the free tier).",
            fmt_n(notifications),
            fmt_n(requests),
            requests / 1e6 * prices.sqs_per_million,
            prices.sqs_per_million
        );
    }
    let confirming: Vec<_> = cfg
        .targets
        .iter()
        .filter_map(|t| confirm_cost_per_hour(t, prices).map(|c| (t, c)))
        .collect();
    if !confirming.is_empty() {
        let _ = writeln!(
            out,
            "While a target fails, its cycles run every confirm_interval until one passes (not counted above):"
        );
        for (t, (extra, usd)) in confirming {
            let _ = writeln!(
                out,
                "  target {}: every {} instead of every {}: up to {} more cycles and ${usd:.3} per hour of failure",
                t.name,
                humantime::format_duration(t.confirm_interval),
                humantime::format_duration(t.interval),
                fmt_n(extra)
            );
        }
    }
    let cw = cloudwatch_metrics(cfg);
    if cfg.cloudwatch.enabled {
        let calls =
            MONTH / cfg.cloudwatch.interval.as_secs_f64() * (cw as f64 / 1000.0).ceil().max(1.0);
        let cost = cw as f64 * prices.cw_metric_month + calls / 1000.0 * prices.cw_requests_per_1k;
        let _ = writeln!(
            out,
            "CloudWatch mirror: {cw} custom metrics (${}/metric-month) and {} PutMetricData calls: ${cost:.2}/month.",
            prices.cw_metric_month,
            fmt_n(calls)
        );
    } else {
        let _ = writeln!(
            out,
            "CloudWatch mirror: off (it would publish {cw} custom metrics, ${:.2}/month).",
            cw as f64 * prices.cw_metric_month
        );
    }
    // The rule expires everything under the prefix after a day; where a durability set lives
    // under it, the rule covers the canaries' own folders instead.
    let mut prefixes: Vec<(String, Vec<String>)> = Vec::new();
    for t in &cfg.targets {
        let keeps_set = cfg
            .targets
            .iter()
            .any(|o| o.bucket == t.bucket && o.prefix == t.prefix && o.durability.is_some());
        let folders = if keeps_set {
            vec![t.canary_prefix(), format!("{}replication/", t.prefix)]
        } else {
            vec![t.prefix.clone()]
        };
        match prefixes.iter_mut().find(|(b, _)| *b == t.bucket) {
            Some((_, v)) => v.extend(folders),
            None => prefixes.push((t.bucket.clone(), folders)),
        }
    }
    for (_, v) in prefixes.iter_mut() {
        v.sort();
        v.dedup();
    }
    prefixes.sort();
    let _ = writeln!(
        out,
        "\nSafety net: a lifecycle rule per bucket that expires what s3canary leaves behind (canaries, versions, uploads) after a day:"
    );
    for (bucket, folders) in prefixes {
        let rules: Vec<_> = folders
            .iter()
            .enumerate()
            .map(|(i, prefix)| {
                json!({
                    "ID": if folders.len() == 1 { "s3canary-safety-net".to_string() } else { format!("s3canary-safety-net-{i}") },
                    "Status": "Enabled",
                    "Filter": {"Prefix": prefix},
                    "Expiration": {"Days": 1},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}
                })
            })
            .collect();
        let rule = json!({ "Rules": rules });
        // A bucket of a store with its own endpoint is configured there, not on AWS.
        let endpoint = cfg
            .targets
            .iter()
            .find(|t| t.bucket == bucket)
            .and_then(|t| t.endpoint.as_deref())
            .map_or(String::new(), |e| {
                format!(" --endpoint-url {}", crate::config::redact_url(e))
            });
        let _ = writeln!(
            out,
            "  aws s3api put-bucket-lifecycle-configuration{endpoint} --bucket {bucket} --lifecycle-configuration '{rule}'"
        );
    }
    let _ = writeln!(
        out,
        "  (this replaces the bucket's lifecycle configuration: merge the rule into an existing one)"
    );
    out
}
