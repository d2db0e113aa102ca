"""What the benchmark scripts share: the environment their processes run with (the embedded
server's credentials, no instance metadata), the media types a scrape asks for, and a process's
memory as /proc gives it."""
import os

ENV = dict(os.environ, AWS_ACCESS_KEY_ID="s3canary-embedded", AWS_SECRET_ACCESS_KEY="s3canary-embedded-secret",
           AWS_EC2_METADATA_DISABLED="true")
ENV.pop("AWS_PROFILE", None)

OPENMETRICS = "application/openmetrics-text;version=1.0.0"
PROTOBUF = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
# Every exposition /metrics has, as a scraper asks for each.
ACCEPT = ["text/plain", OPENMETRICS, PROTOBUF]


def memory(pid):
    """VmRSS, VmHWM, RssAnon and RssFile of a process (KiB), its threads and open fds."""
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            out[k] = int(v.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out
