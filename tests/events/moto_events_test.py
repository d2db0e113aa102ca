#!/usr/bin/env python3
"""The events probe against moto's server, which is S3, SQS and EventBridge in one process and
delivers S3 notifications to SQS queues, both ways s3canary supports: a bucket notification
configuration (`via = "s3"`) and an EventBridge rule with an SQS target (`via = "eventbridge"`).

Checked, on one running daemon and then a restarted one:
- notifications are delivered and their delivery time observed, on both paths;
- a message about a key outside the daemon's prefix is left on the queue (never deleted) and
  counted once;
- a copy of a real notification (taken from a second queue the bucket also notifies) counts as
  a duplicate;
- a delay on the queue shows in the delivery times;
- removing the bucket's notification configuration makes the expected events lost after the
  events timeout;
- after a restart, notifications of the previous process's canaries are consumed, not counted
  as duplicates or foreign messages.

usage: moto_events_test.py S3CANARY_BINARY OUTPUT_DIR
"""
import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import boto3

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from support import Daemon, check, failures, free_port, wait  # noqa: E402

binary, out = sys.argv[1], pathlib.Path(sys.argv[2]) / "events"
out.mkdir(parents=True, exist_ok=True)
moto_port, daemon_port = free_port(), free_port()
url = f"http://127.0.0.1:{moto_port}"
env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
           AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
env.pop("AWS_PROFILE", None)
moto = subprocess.Popen([str(pathlib.Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                         "-p", str(moto_port)], stdout=open(out / "moto.log", "w"), stderr=subprocess.STDOUT)
daemon = None


def start_daemon(log):
    d = Daemon(binary, out / "s3canary.toml", daemon_port, out / log, env)
    d.ready()
    return d


def value(name, **labels):
    return daemon.value(name, **labels)


try:
    kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
              aws_secret_access_key="testing")
    wait("moto answers", 30, lambda: urllib.request.urlopen(url + "/moto-api/", timeout=2).status == 200)
    s3, sqs, bridge = boto3.client("s3", **kw), boto3.client("sqs", **kw), boto3.client("events", **kw)

    def queue(name):
        q = sqs.create_queue(QueueName=name)["QueueUrl"]
        return q, sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    events_q, events_arn = queue("s3canary-events")
    tap_q, tap_arn = queue("tap")
    bridge_q, bridge_arn = queue("s3canary-bridge")
    s3.create_bucket(Bucket="events-bucket")
    s3.create_bucket(Bucket="bridge-bucket")
    canaries = {"Key": {"FilterRules": [{"Name": "prefix", "Value": "s3canary/"}]}}
    kinds = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    notify = {"QueueConfigurations": [
        {"Id": "s3canary", "QueueArn": events_arn, "Events": kinds, "Filter": canaries},
        {"Id": "tap", "QueueArn": tap_arn, "Events": kinds, "Filter": canaries}]}
    s3.put_bucket_notification_configuration(Bucket="events-bucket", NotificationConfiguration=notify)
    s3.put_bucket_notification_configuration(Bucket="bridge-bucket",
                                              NotificationConfiguration={"EventBridgeConfiguration": {}})
    bridge.put_rule(Name="s3canary", EventPattern=json.dumps({
        "source": ["aws.s3"], "detail-type": ["Object Created", "Object Deleted"],
        "detail": {"bucket": {"name": ["bridge-bucket"]}, "object": {"key": [{"prefix": "s3canary/"}]}}}))
    bridge.put_targets(Rule="s3canary", Targets=[{"Id": "queue", "Arn": bridge_arn}])

    config = f'[server]\nlisten = "127.0.0.1:{daemon_port}"\n\n[defaults]\ninterval = "2s"\ntimeout = "1500ms"\n'
    for name, bucket, q, via in [("direct", "events-bucket", events_q, "s3"),
                                 ("bridge", "bridge-bucket", bridge_q, "eventbridge")]:
        config += (f'\n[[target]]\nname = "{name}"\nbucket = "{bucket}"\nregion = "us-east-1"\n'
                   f'endpoint = "{url}"\npath_style = true\n'
                   f'probes = ["put", "get", "list", "overwrite", "delete", "events"]\n'
                   f'\n[target.events]\nqueue_url = "{q}"\nvia = "{via}"\ntimeout = "8s"\nendpoint = "{url}"\n')
    (out / "s3canary.toml").write_text(config)
    daemon = start_daemon("daemon.log")

    # Delivered, both ways.
    for target in ("direct", "bridge"):
        wait(f"{target}: notifications delivered and timed", 30, lambda: all(
            value("s3canary_event_delivery_seconds_count", target=target, event=e) >= 3
            for e in ("object_created", "object_removed")))
    check(value("s3canary_event_lost_total") == 0, "nothing lost while notifications flow")
    check(value("s3canary_event_duplicates_total") == 0, "no duplicates while notifications flow")

    # A message about someone else's key stays on the queue, counted once.
    foreign = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "events-bucket"}, "object": {"key": "app/orders/2026-11-24.csv"}}}]})
    sqs.send_message(QueueUrl=events_q, MessageBody=foreign)
    wait("a foreign message is counted", 20,
         lambda: value("s3canary_event_foreign_messages_total", queue="s3canary-events") == 1)
    time.sleep(6)  # several receives later: counted once, however often it is received
    check(value("s3canary_event_foreign_messages_total", queue="s3canary-events") == 1,
          "the foreign message is counted once")

    # A copy of a real notification is a duplicate.
    # The newest one (its key is still remembered); moto encodes the key's "/" as "%2F".
    copied = None
    for _ in range(50):
        msgs = sqs.receive_message(QueueUrl=tap_q, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            sqs.delete_message(QueueUrl=tap_q, ReceiptHandle=m["ReceiptHandle"])
            for r in json.loads(m["Body"]).get("Records", []):
                key = urllib.parse.unquote_plus(r["s3"]["object"]["key"])
                if r["eventName"].startswith("ObjectCreated") and key.startswith("s3canary/direct/"):
                    copied = m["Body"]
    check(copied is not None, "the tap queue has a canary's notification to copy")
    before = value("s3canary_event_duplicates_total", target="direct")
    sqs.send_message(QueueUrl=events_q, MessageBody=copied)
    wait("a copied notification counts as a duplicate", 20,
         lambda: value("s3canary_event_duplicates_total", target="direct") >= before + 1)
    check(value("s3canary_probe_failures_total", target="direct", probe="events", reason="event_duplicate") >= 1,
          "the duplicate is an events probe failure (event_duplicate)")

    # A delay on the queue shows in the delivery times.
    sqs.set_queue_attributes(QueueUrl=events_q, Attributes={"DelaySeconds": "3"})
    time.sleep(5)
    fast0 = value("s3canary_event_delivery_seconds_bucket", target="direct", le="2.5")
    all0 = value("s3canary_event_delivery_seconds_count", target="direct")
    wait("delayed notifications are delivered", 30,
         lambda: value("s3canary_event_delivery_seconds_count", target="direct") >= all0 + 4)
    check(value("s3canary_event_delivery_seconds_bucket", target="direct", le="2.5") == fast0,
          "every delivery under a 3 s queue delay took longer than 2.5 s")
    sqs.set_queue_attributes(QueueUrl=events_q, Attributes={"DelaySeconds": "0"})

    # Without the notification configuration, expected events are lost after the timeout.
    s3.put_bucket_notification_configuration(Bucket="events-bucket", NotificationConfiguration={})
    wait("events are lost once the bucket stops notifying", 30,
         lambda: value("s3canary_event_lost_total", target="direct") >= 2)
    check(value("s3canary_probe_consecutive_failures", target="direct", probe="events") >= 2,
          "lost events make the events probe fail in a row")
    check(value("s3canary_event_lost_total", target="bridge") == 0, "the other target loses nothing")
    s3.put_bucket_notification_configuration(Bucket="events-bucket", NotificationConfiguration=notify)
    wait("delivery resumes once it notifies again", 30,
         lambda: value("s3canary_probe_success", target="direct", probe="events") == 1)

    # After a restart, the previous process's notifications are consumed without judging them.
    # While it is down, a canary of that process is written and deleted (the key carries its
    # time), as a cycle cut short by a crash leaves them.
    daemon.stop()
    daemon = None
    earlier = f"s3canary/direct/{int(time.time() * 1000):013d}-{os.urandom(8).hex()}"
    s3.put_object(Bucket="events-bucket", Key=earlier, Body=b"left by an earlier process")
    s3.delete_object(Bucket="events-bucket", Key=earlier)

    def waiting():
        return int(sqs.get_queue_attributes(QueueUrl=events_q, AttributeNames=["ApproximateNumberOfMessages"])
                   ["Attributes"]["ApproximateNumberOfMessages"])
    check(waiting() >= 3, f"the earlier canary's notifications wait on the queue with the foreign one ({waiting()})")
    daemon = start_daemon("daemon-restarted.log")
    wait("the restarted daemon delivers again", 30,
         lambda: value("s3canary_event_delivery_seconds_count", target="direct") >= 3)
    wait("they are consumed: only the foreign message is left", 20, lambda: waiting() <= 1)
    check(value("s3canary_event_duplicates_total") == 0, "the previous run's notifications are no duplicates")
    check(value("s3canary_event_foreign_messages_total", queue="s3canary-events") == 1,
          "and no foreign messages (only the one foreign message)")
    daemon.stop()
    daemon = None

    # The foreign message was never deleted. A long poll cut off by the shutdown may have been
    # handed it: then it is hidden for the daemon's receive visibility timeout (10 s), no longer.
    bodies = []
    deadline = time.monotonic() + 30
    while foreign not in bodies and time.monotonic() < deadline:
        msgs = sqs.receive_message(QueueUrl=events_q, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                   VisibilityTimeout=0).get("Messages", [])
        bodies += [m["Body"] for m in msgs]
    check(foreign in bodies, "the foreign message is still on the queue, untouched")
finally:
    if daemon:
        daemon.kill()
    moto.terminate()
    moto.wait()

if failures:
    print("--- daemon log (tail)")
    print("\n".join((out / "daemon.log").read_text().splitlines()[-20:]))
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("events probe against moto: all checks passed")
