#!/usr/bin/env python3
"""The daemon against an independent S3 and CloudWatch: moto's server on 127.0.0.1 (CloudWatch
through cbor_shim.py). After a few cycles and a SIGTERM (final flush), the figures are read
back through the CloudWatch API and checked: namespace, names, dimensions, units, 100% success
on a healthy bucket, 0% on a missing one, latency consistent with the Prometheus histogram.

usage: moto_test.py S3CANARY_BINARY OUTPUT_DIR
"""
import datetime
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.request

import boto3

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from support import check, failures, free_port, wait  # noqa: E402

binary, out = sys.argv[1], pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
here = pathlib.Path(__file__).resolve().parent


moto_port, shim_port, http_port = free_port(), free_port(), free_port()
moto_url = f"http://127.0.0.1:{moto_port}"
shim_url = f"http://127.0.0.1:{shim_port}"
env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
           AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
env.pop("AWS_PROFILE", None)
procs = []
try:
    moto_bin = pathlib.Path(sys.executable).parent / "moto_server"
    procs.append(subprocess.Popen([str(moto_bin), "-H", "127.0.0.1", "-p", str(moto_port)],
                                  stdout=open(out / "moto.log", "w"), stderr=subprocess.STDOUT, env=env))
    procs.append(subprocess.Popen([sys.executable, str(here / "cbor_shim.py"), str(shim_port), moto_url],
                                  stdout=open(out / "shim.log", "w"), stderr=subprocess.STDOUT, env=env))
    wait("moto answers", 60, lambda: urllib.request.urlopen(moto_url + "/moto-api/", timeout=2).status == 200)

    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="canary-ok")
    s3.put_object(Bucket="canary-ok", Key="app/data.json", Body=b"{}")

    config = out / "s3canary.toml"
    config.write_text(f"""
[server]
listen = "127.0.0.1:{http_port}"
[defaults]
interval = "1s"
timeout = "900ms"
[[target]]
name = "ok"
bucket = "canary-ok"
region = "us-east-1"
endpoint = "{moto_url}"
path_style = true
[[target]]
name = "missing"
bucket = "canary-missing"
region = "us-east-1"
endpoint = "{moto_url}"
path_style = true
probes = ["put", "get"]
[cloudwatch]
enabled = true
region = "us-east-1"
namespace = "S3/Consistency"
interval = "2s"
endpoint = "{shim_url}"
""")
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    daemon = subprocess.Popen([binary, "run", "--config", str(config)], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(out / "daemon.log", "w"))
    procs.append(daemon)

    def metric(name, labels=""):
        text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(l in line for l in labels.split(",") if l):
                total += float(line.rsplit(" ", 1)[1])
        return total, text

    wait("the daemon runs 6 cycles against moto S3 and publishes twice", 60,
         lambda: metric("s3canary_probe_runs_total", 'target="ok",probe="get"')[0] >= 6
         and metric("s3canary_cloudwatch_publish_total", 'result="success"')[0] >= 2)
    prom_n, _ = metric("s3canary_probe_duration_seconds_count", 'target="ok",probe="get"')
    prom_sum, _ = metric("s3canary_probe_duration_seconds_sum", 'target="ok",probe="get"')
    daemon.send_signal(signal.SIGTERM)
    check(daemon.wait(timeout=30) == 0, "the daemon exits 0 on SIGTERM after its final flush")

    # Read back through the CloudWatch API, straight from moto (botocore speaks awsJson1.0).
    cw = boto3.client("cloudwatch", endpoint_url=moto_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    end = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)
    names = {m["MetricName"]: m for m in cw.list_metrics(Namespace="S3/Consistency")["Metrics"]}
    for check_name in ["Put", "Read_After_Write", "List_After_Write", "Update_Consistency",
                       "Delete_Consistency", "Conditional_Write"]:
        for kind in ["SuccessRate", "Latency"]:
            check(f"S3Consistency_{check_name}_{kind}" in names, f"S3Consistency_{check_name}_{kind} is in S3/Consistency")

    def stats(name, bucket, unit):
        r = cw.get_metric_statistics(
            Namespace="S3/Consistency", MetricName=name,
            Dimensions=[{"Name": "BucketName", "Value": bucket}, {"Name": "Region", "Value": "us-east-1"}],
            StartTime=start, EndTime=end, Period=3600,
            Statistics=["Average", "SampleCount", "Sum", "Minimum", "Maximum"], Unit=unit)
        points = r["Datapoints"]
        n = sum(p["SampleCount"] for p in points)
        s = sum(p["Sum"] for p in points)
        return n, s, points

    n, s, _ = stats("S3Consistency_Put_SuccessRate", "canary-ok", "Percent")
    check(n >= 3 and abs(s / n - 100.0) < 1e-9, f"Put SuccessRate on the healthy bucket averages 100% ({n} datapoints)")
    n, s, _ = stats("S3Consistency_Read_After_Write_SuccessRate", "canary-ok", "Percent")
    check(n >= 3 and abs(s / n - 100.0) < 1e-9, "Read_After_Write SuccessRate on the healthy bucket averages 100%")
    n, s, _ = stats("S3Consistency_Put_SuccessRate", "canary-missing", "Percent")
    check(n >= 3 and s / n < 1.0, f"Put SuccessRate on the missing bucket is 0% (average {s / max(n, 1):.1f})")

    # Latency: every successful get is one sample; its mean matches Prometheus's histogram.
    n, s, _ = stats("S3Consistency_Read_After_Write_Latency", "canary-ok", "Milliseconds")
    # Prometheus was read just before SIGTERM; at most a cycle or two finished after it.
    check(prom_n <= n <= prom_n + 2, f"CloudWatch has {int(n)} latency samples, Prometheus had {int(prom_n)} just before")
    prom_mean = 1000 * prom_sum / prom_n
    check(abs(s / n - prom_mean) <= max(1.0, 0.25 * prom_mean),
          f"mean latency agrees: CloudWatch {s / n:.2f} ms, Prometheus {prom_mean:.2f} ms")
    log = (out / "daemon.log").read_text()
    check("s3canary is running" in log, "the daemon logged its start")
    print(f"CloudWatch Read_After_Write_Latency: {int(n)} samples, mean {s / max(n, 1):.2f} ms")
    check(n >= 6, "Read_After_Write latency has a sample per successful get")
    dims_ok = all(
        sorted(d["Name"] for d in m["Dimensions"]) == ["BucketName", "Region"]
        for name, m in names.items() if not name.startswith("S3Consistency_Replication")
    )
    check(dims_ok, "every probe metric has exactly the BucketName and Region dimensions")
    objects = [o["Key"] for o in s3.list_objects_v2(Bucket="canary-ok").get("Contents", [])]
    check(objects == ["app/data.json"], f"only the application's object is left in moto's bucket: {objects}")

    # A versioned bucket (every replication user has one): a cycle deletes every version and
    # delete marker it created, by version id, and nothing else.
    s3.create_bucket(Bucket="canary-versioned")
    s3.put_bucket_versioning(Bucket="canary-versioned", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="canary-versioned", Key="app/keep.json", Body=b"{}")
    versioned = out / "versioned.toml"
    versioned.write_text(f"""
[[target]]
name = "versioned"
bucket = "canary-versioned"
region = "us-east-1"
endpoint = "{moto_url}"
path_style = true
""")
    r = subprocess.run([binary, "once", "--config", str(versioned)], env=env, capture_output=True,
                       text=True, timeout=120)
    (out / "versioned-once.txt").write_text(r.stdout + r.stderr)
    check(r.returncode == 0, f"a cycle on a versioned bucket passes (exit {r.returncode}, see versioned-once.txt)")
    v = s3.list_object_versions(Bucket="canary-versioned", Prefix="s3canary/")
    left = [(x["Key"], x["VersionId"]) for x in v.get("Versions", []) + v.get("DeleteMarkers", [])]
    check(left == [], f"no version or delete marker is left under the prefix: {left}")
    kept = s3.list_object_versions(Bucket="canary-versioned", Prefix="app/").get("Versions", [])
    check(len(kept) == 1, f"the application's object keeps its one version: {len(kept)}")
finally:
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

print(f"cloudwatch against moto: {len(failures)} failed")
sys.exit(1 if failures else 0)
