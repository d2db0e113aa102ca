#!/usr/bin/env python3
"""The baseline: an S3 consistency canary written the way monitoring scripts usually are, in
Python with boto3, one thread and one client per bucket, doing the same cycle as s3canary
(put, get, list, overwrite, delete with head and list, conditional writes, cleanup).

usage: boto3_baseline.py ENDPOINT TARGETS SECONDS INTERVAL_SECONDS WARMUP_SECONDS
prints one JSON object: cycles and cpu_seconds after the warm-up (client creation, first
connections and imports excluded, as they are for s3canary), max_rss_kib over the whole run
"""
import json
import resource
import sys
import threading
import time
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, targets, seconds, interval, warmup = (sys.argv[1], int(sys.argv[2]), float(sys.argv[3]),
                                                 float(sys.argv[4]), float(sys.argv[5]))
cycles = 0
lock = threading.Lock()
stop = time.time() + warmup + seconds
mark = {}


def cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def warmed_up():
    with lock:
        mark["cycles"], mark["cpu"] = cycles, cpu()


def refused(fn):
    try:
        fn()
        return False
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"] in (409, 412, 304)


def canary(i):
    global cycles
    bucket = f"b{i:04d}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="s3canary-embedded", aws_secret_access_key="s3canary-embedded-secret",
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))
    next_run = time.time() + (i % 100) * interval / 100
    while time.time() < stop:
        time.sleep(max(0, next_run - time.time()))
        next_run += interval
        key = f"s3canary/py{i}/{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:16]}"
        try:
            body = uuid.uuid4().bytes * 64
            etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
            assert any(o["Key"] == key for o in s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", []))
            body2 = uuid.uuid4().bytes * 64
            s3.put_object(Bucket=bucket, Key=key, Body=body2)
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body2
            s3.delete_object(Bucket=bucket, Key=key)
            try:
                s3.head_object(Bucket=bucket, Key=key)
            except ClientError:
                pass
            s3.list_objects_v2(Bucket=bucket, Prefix=key)
            cur = s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")["ETag"]
            refused(lambda: s3.put_object(Bucket=bucket, Key=key, Body=body2, IfNoneMatch="*"))
            refused(lambda: s3.put_object(Bucket=bucket, Key=key, Body=body2, IfMatch=etag))
            s3.put_object(Bucket=bucket, Key=key, Body=body2, IfMatch=cur)
        except Exception as e:  # a monitor keeps going
            print(f"cycle failed: {e}", file=sys.stderr)
        finally:
            try:
                s3.delete_object(Bucket=bucket, Key=key)
            except Exception:
                pass
        with lock:
            cycles += 1


timer = threading.Timer(warmup, warmed_up)
timer.start()
threads = [threading.Thread(target=canary, args=(i,)) for i in range(targets)]
for t in threads:
    t.start()
for t in threads:
    t.join()
timer.join()
print(json.dumps({"cycles": cycles - mark["cycles"], "cpu_seconds": cpu() - mark["cpu"],
                  "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
