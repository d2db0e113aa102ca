#!/usr/bin/env python3
"""Time to page: from the moment a fault starts on S3 to the first notification that reaches an
on-call receiver, with everything at its defaults and every part real.

`s3canary run` (interval 30s, timeout 10s, confirm_interval 5s: nothing set) probes one bucket
per fault on the embedded S3 server (tests/e2e/fault_s3.rs), a real Prometheus scrapes it and
evaluates the shipped rules (alerts/s3canary.rules.yml, unchanged) every 30 s, as
kube-prometheus does, and a real Alertmanager runs the shipped routing
(deploy/alertmanager/alertmanager.yml) with its webhooks pointed at this script.

Each fault is switched on in turn, a few seconds apart (so they meet the scrape and evaluation
cycles at different phases), on its own bucket; the time to its target's first notification is
recorded, with the time the daemon itself knew (two failed runs in a row in /metrics). A healthy
target and a noisy one (a 503 that the SDK's retry absorbs, one 3 s request, one failed cycle)
run alongside and must get no notification at all.

Asserts: every hard fault pages within 120 s (the background documents' requirement) and its
first notification is the right alert; the latency fault pages within 300 s; the healthy and
noisy targets never page. Writes OUTPUT_DIR/time-to-page.json and prints a table.

usage: time_to_page.py S3CANARY_BINARY FAULT_S3_BINARY OUTPUT_DIR
"""
import http.server
import json
import pathlib
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from support import (Processes, check, embedded_env, failures, free_port, get,  # noqa: E402
                     target_toml, wait)

binary, fault_s3, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3]) / "time-to-page"
# A fresh start: Alertmanager's notification log of a run before this one in the same tree
# (repeat_interval 4h) would hold back the very notifications this suite waits for.
shutil.rmtree(out, ignore_errors=True)
out.mkdir(parents=True, exist_ok=True)
root = pathlib.Path(__file__).resolve().parents[2]

# target (= bucket), fault profile, the alerts that may come first, whether it is a hard fault.
FAULTS = [
    ("outage", "outage", {"S3RequestsFailing"}, True),
    ("denied", "denied", {"S3CredentialsFailing"}, True),
    # A hanging GET is both a failing request and a slow one (its attempts time out after
    # seconds and are timed as such): whichever of the two alerts is evaluated first pages.
    ("hang", "hang", {"S3RequestsFailing", "S3GetLatencyHigh"}, True),
    ("stale", "stale-reads", {"S3ConsistencyBroken"}, True),
    ("listlag", "list-lag", {"S3ConsistencyBroken"}, True),
    ("unconditional", "unconditional", {"S3ConditionalWritesNotEnforced", "S3ConsistencyBroken"}, True),
    ("slowget", "slow-get", {"S3GetLatencyHigh"}, False),
]
QUIET = ["healthy", "noisy"]
HARD_LIMIT, LATENCY_LIMIT = 120.0, 300.0
# Noise on the noisy target, seconds after the first fault: (what, profile, requests).
NOISE = [(5, "a 503 the retry absorbs", "outage", 1),
         (35, "one 3 s request", "stall", 1),
         (65, "one failed cycle (three 503s to one PUT)", "outage", 3)]
QUIET_AFTER_NOISE = 150.0

s3_port, control_port, daemon_port = free_port(), free_port(), free_port()
prom_port, am_port, hook_port = free_port(), free_port(), free_port()
buckets = [f[0] for f in FAULTS] + QUIET

# ---------------------------------------------------------------- the webhook receiver
notifications = []  # (monotonic time, receiver path, alertname, labels) of firing alerts
lock = threading.Lock()


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(min(int(self.headers.get("Content-Length", 0)), 1 << 20))
        now = time.monotonic()
        try:
            msg = json.loads(body)
        except ValueError:
            msg = {}
        with lock:
            for a in msg.get("alerts", []):
                if a.get("status") == "firing":
                    notifications.append((now, self.path, a["labels"].get("alertname"), a["labels"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


hook = http.server.ThreadingHTTPServer(("127.0.0.1", hook_port), Hook)
threading.Thread(target=hook.serve_forever, daemon=True).start()

# ---------------------------------------------------------------- configs
endpoint = f"http://127.0.0.1:{s3_port}"
config = f'[server]\nlisten = "127.0.0.1:{daemon_port}"\n'
config += "".join(target_toml(b, b, endpoint) for b in buckets)
(out / "s3canary.toml").write_text(config)
(out / "prometheus.yml").write_text(f"""global:
  scrape_interval: 30s
  evaluation_interval: 30s
rule_files: [{root / "alerts/s3canary.rules.yml"}]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["127.0.0.1:{am_port}"]}}]
scrape_configs:
  - job_name: s3canary
    static_configs: [{{targets: ["127.0.0.1:{daemon_port}"]}}]
""")
am = (root / "deploy/alertmanager/alertmanager.yml").read_text()
(out / "alertmanager.yml").write_text(
    am.replace("http://alert-receiver.example/", f"http://127.0.0.1:{hook_port}/"))

# ---------------------------------------------------------------- processes
env = embedded_env()
am_bin = next(p for p in ("prometheus-alertmanager", "alertmanager")
              if subprocess.run(["sh", "-c", f"command -v {p}"], capture_output=True).returncode == 0)
procs = Processes(out)
start, stop_all = procs.start, procs.stop


def wait_for(what, limit, cond):
    return wait(what, limit, cond, report_ok=False, every=0.5)


def prom(query):
    q = urllib.parse.urlencode({"query": query})
    return json.loads(get(f"http://127.0.0.1:{prom_port}/api/v1/query?{q}"))["data"]["result"]


def fault(bucket, profile, requests=None):
    q = {"bucket": bucket} | ({"requests": requests} if requests else {})
    url = f"http://127.0.0.1:{control_port}/-/demo/faults/{profile}?{urllib.parse.urlencode(q)}"
    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5).read()


def streaks():
    """target -> highest consecutive_failures of its probes, from the daemon's /metrics."""
    best = {}
    for line in get(f"http://127.0.0.1:{daemon_port}/metrics").splitlines():
        if line.startswith("s3canary_probe_consecutive_failures{"):
            labels, value = line.rsplit(" ", 1)
            t = labels.split('target="', 1)[1].split('"', 1)[0]
            best[t] = max(best.get(t, 0.0), float(value))
    return best


try:
    fs = start("fault-s3", [fault_s3, f"127.0.0.1:{s3_port}", f"127.0.0.1:{control_port}", *buckets])
    start("alertmanager", [am_bin, f"--config.file={out / 'alertmanager.yml'}",
                           f"--storage.path={out / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                           "--cluster.listen-address="])
    start("prometheus", ["prometheus", f"--config.file={out / 'prometheus.yml'}",
                         f"--storage.tsdb.path={out / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prom_port}"])
    ok = wait_for("the fault server answers", 30, lambda: (out / "fault-s3.log").read_text().startswith("ready"))
    start("s3canary", [binary, "run", "--config", str(out / "s3canary.toml")], env=env)
    ok = ok and wait_for("the daemon is ready", 30,
                         lambda: get(f"http://127.0.0.1:{daemon_port}/-/ready").startswith("ready"))
    # Every target has run a cycle and Prometheus holds two scrapes of it: the baseline.
    ok = ok and wait_for("every target ran a cycle and Prometheus scraped it twice", 150, lambda: (
        len(prom('s3canary_probe_runs_total{probe="put"} > 0')) == len(buckets)
        and prom('count_over_time(up{job="s3canary"}[5m]) >= 2')))
    if not ok:
        raise SystemExit(1)

    # ---------------------------------------------------------------- faults and noise
    t0 = time.monotonic()
    gap = 30.0 / len(FAULTS)
    events = [(i * gap, "fault", f) for i, f in enumerate(FAULTS)]
    events += [(at, "noise", n) for at, *n in NOISE]
    events.sort(key=lambda e: e[0])
    switched, daemon_knew = {}, {}
    end = t0 + max(30 + LATENCY_LIMIT, NOISE[-1][0] + QUIET_AFTER_NOISE)
    pending = list(events)

    def first_for(target):
        with lock:
            return next((n for n in notifications if n[3].get("target") == target), None)

    while time.monotonic() < end:
        now = time.monotonic()
        while pending and now - t0 >= pending[0][0]:
            _, kind, what = pending.pop(0)
            if kind == "fault":
                fault(what[0], what[1])
                switched[what[0]] = time.monotonic()
                print(f"  +{time.monotonic() - t0:5.1f}s fault {what[1]} on {what[0]}", flush=True)
            else:
                fault("noisy", what[1], what[2])
                print(f"  +{time.monotonic() - t0:5.1f}s noise on noisy: {what[0]}", flush=True)
        try:
            for t, v in streaks().items():
                if t in switched and t not in daemon_knew and v >= 2:
                    daemon_knew[t] = time.monotonic()
        except OSError:
            pass
        done = all(first_for(f[0]) for f in FAULTS)
        if done and not pending and now - t0 >= NOISE[-1][0] + QUIET_AFTER_NOISE:
            break
        time.sleep(0.5)

    # ---------------------------------------------------------------- results
    results = []
    print(f"\n{'fault':<14} {'profile':<14} {'daemon knew':>11} {'first page':>10}  first alert")
    for target, profile, expected, hard in FAULTS:
        first = first_for(target)
        took = first[0] - switched[target] if first else None
        knew = daemon_knew[target] - switched[target] if target in daemon_knew else None
        with lock:
            same = sorted({n[2] for n in notifications if first and n[3].get("target") == target
                           and n[0] - first[0] < 1.0})
        results.append({"target": target, "profile": profile, "hard": hard,
                        "daemon_knew_seconds": knew, "time_to_page_seconds": took, "first_alerts": same})
        print(f"{target:<14} {profile:<14} {(f'{knew:.0f} s' if knew is not None else '-'):>11} "
              f"{(f'{took:.0f} s' if took is not None else 'none'):>10}  {', '.join(same) or '-'}")
        limit = HARD_LIMIT if hard else LATENCY_LIMIT
        check(took is not None and took <= limit,
              f"{profile} on {target} pages within {limit:.0f}s (took {took if took is None else round(took)})")
        check(bool(same) and set(same) <= expected,
              f"{profile} on {target}: the first notification is {sorted(expected)}, got {same}")
    for target in QUIET:
        with lock:
            got = sorted({n[2] for n in notifications if n[3].get("target") == target})
        check(not got, f"{target} target gets no notification (got {got})")
    with lock:
        stray = sorted({n[2] for n in notifications if n[3].get("target") not in buckets})
    print(f"notifications without a target label: {stray or 'none'}")
    (out.parent / "time-to-page.json").write_text(json.dumps({
        "settings": {"interval": "30s", "timeout": "10s", "confirm_interval": "5s",
                     "scrape_interval": "30s", "evaluation_interval": "30s",
                     "alertmanager_group_wait": "10s"},
        "results": results}, indent=2) + "\n")
finally:
    stop_all()
    hook.shutdown()

if failures:
    for name in ("s3canary", "prometheus", "alertmanager"):
        print(f"--- {name} log (tail)")
        print("\n".join((out / f"{name}.log").read_text().splitlines()[-15:]))
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("time to page: all checks passed")
