#!/usr/bin/env python3
"""The soak of `scripts/bench --soak`: is s3canary's memory flat over an hour of churn?

usage: soak.py MINUTES MARKDOWN_OUT JSON_OUT

20 targets at a 2 s interval against the embedded server with faults (the `fault-s3` example);
every 20 s a fault profile is switched on all buckets (cycling through every profile, `none`
between them), every 15 s the config is reloaded (alternately dropping the last target and
changing the first one's interval, and restoring both), every second `/metrics` is scraped
(text, OpenMetrics and protobuf in turn) and every 5 s `/api/v1/status`. Every 10 s the
daemon's memory (VmRSS, split into anonymous memory and the pages of files it maps), threads
and open fds are sampled. Needs S3CANARY_BIN (default target/release/s3canary) and target/release/examples/fault-s3.
"""
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import urllib.request

root = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root / "tests"))
sys.path.insert(0, str(root / "bench"))
from support import free_port  # noqa: E402
from procs import ACCEPT, ENV as env, memory  # noqa: E402

minutes, md_out, json_out = float(sys.argv[1]), pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
seconds = minutes * 60
daemon_bin = (root / os.environ.get("S3CANARY_BIN", "target/release/s3canary")).resolve()
fault_bin = root / "target/release/examples/fault-s3"
work = pathlib.Path(os.environ.get("BENCH_WORK", "/tmp/s3canary-bench"))
work.mkdir(parents=True, exist_ok=True)
TARGETS = 20
PROFILES = ["slow", "flaky", "stall", "stale", "throttled", "outage", "denied", "slow-get", "stale-reads",
            "list-lag", "hang", "unreachable", "unconditional", "reset", "kms-throttled", "kms-denied",
            "clock-skew", "wrong-region", "expired-token", "vpce-denied", "no-trailers", "ignore-checksums",
            "no-checksums", "wrong-checksum", "complete-error", "lost-part"]


def config(port, endpoint, variant):
    lines = [f'[server]\nlisten = "127.0.0.1:{port}"\n[defaults]\ninterval = "2s"\ntimeout = "1500ms"\n']
    for i in range(TARGETS - variant):
        interval = '\ninterval = "3s"' if variant and i == 0 else ""
        lines.append(f'[[target]]\nname = "t{i}"\nbucket = "b{i:04d}"\nregion = "us-east-1"\n'
                     f'endpoint = "{endpoint}"\npath_style = true{interval}\n')
    return "".join(lines)


def post(url):
    urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=30).read()


s3_port, control_port, port = free_port(), free_port(), free_port()
buckets = [f"b{i:04d}" for i in range(TARGETS)]
server = subprocess.Popen([str(fault_bin), f"127.0.0.1:{s3_port}", f"127.0.0.1:{control_port}", *buckets],
                          stdout=subprocess.PIPE, text=True, env=env)
assert server.stdout.readline().strip() == "ready"
cfg = work / "soak.toml"
cfg.write_text(config(port, f"http://127.0.0.1:{s3_port}", 0))
log_path = work / "soak.log"
log = open(log_path, "w")
daemon = subprocess.Popen([str(daemon_bin), "run", "--config", str(cfg)], env=env, stdout=log, stderr=log)
stop = threading.Event()
counts = {"scrapes": 0, "scrape_errors": 0, "reloads": 0, "reload_errors": 0, "faults": 0, "status": 0}


def every(period, work):
    """Calls work(n) every `period` seconds until the soak ends."""
    def run():
        n = 0
        while not stop.wait(period):
            work(n)
            n += 1
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def scrape(n):
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": ACCEPT[n % 3]})
        urllib.request.urlopen(req, timeout=30).read()
        counts["scrapes"] += 1
        if n % 5 == 0:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=30).read()
            counts["status"] += 1
    except OSError:
        counts["scrape_errors"] += 1


def reload(n):
    cfg.write_text(config(port, f"http://127.0.0.1:{s3_port}", (n + 1) % 2))
    try:
        post(f"http://127.0.0.1:{port}/-/reload")
        counts["reloads"] += 1
    except OSError:
        counts["reload_errors"] += 1


def fault(n):
    # Every other switch turns faults off, so each profile starts from a healthy store.
    profile = "none" if n % 2 else PROFILES[(n // 2) % len(PROFILES)]
    post(f"http://127.0.0.1:{control_port}/-/demo/faults/{profile}")
    counts["faults"] += 1


samples = []
start = time.monotonic()
try:
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=5).read()
            break
        except OSError:
            if time.monotonic() - start > 30:
                raise
            time.sleep(0.1)
    threads = [every(1, scrape), every(15, reload), every(20, fault)]
    while True:
        t = time.monotonic() - start
        samples.append({"t": round(t), **memory(daemon.pid)})
        if t >= seconds:
            break
        time.sleep(min(10, seconds - t))
finally:
    stop.set()
    daemon.send_signal(signal.SIGTERM)
    code = daemon.wait(timeout=60)
    log.close()
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)

text = log_path.read_text(errors="replace")
panics = text.count("panicked")
errors = sum(1 for line in text.splitlines() if " ERROR " in line)


def at(second):
    return min(samples, key=lambda s: abs(s["t"] - second))


mark = at(min(1200, seconds / 3))
end = samples[-1]
result = {
    "minutes": minutes, "targets": TARGETS, "exit_code": code, "panics": panics, "error_lines": errors,
    **counts, "samples": samples,
    "rss_at_mark_kib": mark["VmRSS"], "mark_s": mark["t"], "rss_end_kib": end["VmRSS"],
    "anon_at_mark_kib": mark["RssAnon"], "anon_end_kib": end["RssAnon"],
    "max_fds": max(s["fds"] for s in samples), "peak_kib": end["VmHWM"],
}
json_out.write_text(json.dumps(result, indent=2) + "\n")
step = max(1, len(samples) // 12)
lines = [
    f"Soak of {minutes:g} minutes, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {TARGETS} targets at 2 s, "
    f"{counts['faults']} fault switches, {counts['reloads']} reloads ({counts['reload_errors']} failed), "
    f"{counts['scrapes']} scrapes ({counts['scrape_errors']} failed), exit code {code}, {panics} panics, "
    f"{errors} ERROR lines, at most {result['max_fds']} fds. RSS at {mark['t'] // 60} min "
    f"{mark['VmRSS'] / 1024:.1f} MiB, at the end {end['VmRSS'] / 1024:.1f} MiB "
    f"({(end['VmRSS'] - mark['VmRSS']) / 1024:+.2f}; anonymous {(end['RssAnon'] - mark['RssAnon']) / 1024:+.2f}), "
    f"peak {end['VmHWM'] / 1024:.1f} MiB.",
    "",
    "| minute | VmRSS MiB | anonymous MiB | file pages MiB | threads | fds |",
    "|---|---|---|---|---|---|",
]
for s in samples[::step] + ([end] if samples[::step][-1] is not end else []):
    lines.append(f"| {s['t'] / 60:.1f} | {s['VmRSS'] / 1024:.1f} | {s['RssAnon'] / 1024:.1f} | "
                 f"{s['RssFile'] / 1024:.1f} | {s['Threads']} | {s['fds']} |")
md_out.write_text("\n".join(lines) + "\n")
print("\n".join(lines))
