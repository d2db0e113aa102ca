#!/usr/bin/env python3
"""Runs every benchmark of scripts/bench on 127.0.0.1 and writes a markdown report and JSON.

usage: run.py [--quick] MARKDOWN_OUT JSON_OUT
Needs the binaries S3CANARY_BIN and BENCH_BIN name (default target/release/s3canary and
target/release/examples/bench; scripts/bench builds them)
and boto3 for the baseline (.venv).
"""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from support import free_port  # noqa: E402
from procs import ENV as env, PROTOBUF, memory  # noqa: E402

quick = "--quick" in sys.argv
args = [a for a in sys.argv[1:] if a != "--quick"]
md_out, json_out = pathlib.Path(args[0]), pathlib.Path(args[1])
root = pathlib.Path(__file__).resolve().parents[1]
daemon_bin = (root / os.environ.get("S3CANARY_BIN", "target/release/s3canary")).resolve()
bench_bin = (root / os.environ.get("BENCH_BIN", "target/release/examples/bench")).resolve()
py = root / ".venv/bin/python"
work = pathlib.Path(os.environ.get("BENCH_WORK", "/tmp/s3canary-bench"))
work.mkdir(parents=True, exist_ok=True)
results = {"quick": quick, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": f"{os.cpu_count()} cores"}


def bench(*a, timeout=600):
    r = subprocess.run([str(bench_bin), *map(str, a)], capture_output=True, text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        raise SystemExit(f"bench {a} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def proc_stats(pid):
    stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks
    hwm = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM"))
    return cpu, hwm


def scrape(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60).read().decode()


def put_cycles(text):
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith("s3canary_probe_runs_total{") and 'probe="put"' in l)


def scrape_protobuf(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": PROTOBUF})
    return len(urllib.request.urlopen(req, timeout=60).read())


def resident_by_file(pid):
    """Resident KiB of a process by what is mapped: its own binary, shared libraries, anonymous."""
    rss, name = {}, None
    for l in open(f"/proc/{pid}/smaps"):
        f = l.split()
        if "-" in f[0] and len(f) >= 5 and ":" in f[3]:
            path = f[5] if len(f) > 5 else ""
            name = ("binary" if path == str(daemon_bin) else "libraries" if path.startswith("/")
                    else "anonymous")
        elif f[0] == "Rss:":
            rss[name] = rss.get(name, 0) + int(f[1])
    return rss


def write_config(path, port, endpoint, targets, interval, timeout, extra=""):
    lines = [f'[server]\nlisten = "127.0.0.1:{port}"\n[defaults]\ninterval = "{interval}"\n'
             f'timeout = "{timeout}"\n{extra}']
    for i in range(targets):
        lines.append(f'[[target]]\nname = "t{i}"\nbucket = "b{i:04d}"\nregion = "us-east-1"\n'
                     f'endpoint = "{endpoint}"\npath_style = true\n')
    path.write_text("".join(lines))


def wait_ready(port, deadline=30):
    end = time.monotonic() + deadline
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=5).read()
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def sidecar(seconds, interval):
    """One target, six probes, as a sidecar runs: RSS sampled every 10 s, what it is made of."""
    server = subprocess.Popen([str(bench_bin), "server", "1"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    endpoint = server.stdout.readline().strip()
    try:
        port = free_port()
        cfg = work / "sidecar.toml"
        write_config(cfg, port, endpoint, 1, f"{interval}s", "10s")
        d = subprocess.Popen([str(daemon_bin), "run", "--config", str(cfg)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(port)
        samples, start = [], time.monotonic()
        while True:
            t = time.monotonic() - start
            samples.append({"t": round(t), **memory(d.pid)})
            if t >= seconds:
                break
            time.sleep(min(10, seconds - t))
        cycles = put_cycles(scrape(port))
        last = {**memory(d.pid), "by_mapping": resident_by_file(d.pid), "cycles": cycles}
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=30)
        return {"seconds": seconds, "interval_s": interval, "samples": samples, "end": last}
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def cpu_process(rounds, targets, interval_ms, warmup, seconds):
    """CPU per cycle of `s3canary run` and of the bare loop as a process of its own (`bench
    bare-loop`), in alternating rounds against one embedded server, each a fresh process: the
    same buckets, interval and spread, counted over the same window after the same warm-up."""
    server = subprocess.Popen([str(bench_bin), "server", str(targets)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    endpoint = server.stdout.readline().strip()
    ours, bare = [], []
    try:
        for _ in range(rounds):
            port = free_port()
            cfg = work / "cpu-process.toml"
            write_config(cfg, port, endpoint, targets, f"{interval_ms}ms", f"{interval_ms * 0.8:.0f}ms")
            d = subprocess.Popen([str(daemon_bin), "run", "--config", str(cfg)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(warmup)
            cycles0, (cpu0, _) = put_cycles(scrape(port)), proc_stats(d.pid)
            time.sleep(seconds)
            cycles, (cpu, _) = put_cycles(scrape(port)) - cycles0, proc_stats(d.pid)
            d.send_signal(signal.SIGTERM)
            d.wait(timeout=30)
            ours.append(1000 * (cpu - cpu0) / max(cycles, 1))
            b = bench("bare-loop", endpoint, targets, interval_ms, int(warmup * 1000), int(seconds * 1000))
            bare.append(1000 * b["cpu_seconds"] / max(b["cycles"], 1))
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    ratios = sorted(o / b for o, b in zip(ours, bare))
    med = lambda v: sorted(v)[len(v) // 2]
    return {"rounds": rounds, "targets": targets, "interval_ms": interval_ms, "seconds": seconds,
            "s3canary_ms_per_cycle": ours, "bare_ms_per_cycle": bare,
            "s3canary_ms": med(ours), "bare_ms": med(bare), "ratio": med(ratios)}


def footprint(targets, seconds, interval, warmup, baseline=True):
    """s3canary and the boto3 baseline, each against its own embedded S3 server process.

    CPU and cycles are counted from the end of a warm-up (start-up, first connections, the
    spread of the first interval) to the end of the run, for both; peak RSS covers the whole run,
    including the daemon's /metrics scrapes.
    """
    out = {}
    for who in ["s3canary", "boto3"] if baseline else ["s3canary"]:
        server = subprocess.Popen([str(bench_bin), "server", str(targets)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)
        endpoint = server.stdout.readline().strip()
        try:
            if who == "s3canary":
                port = free_port()
                cfg = work / f"footprint-{targets}.toml"
                write_config(cfg, port, endpoint, targets, f"{interval}s", f"{min(interval * 0.9, 10)}s")
                d = subprocess.Popen([str(daemon_bin), "run", "--config", str(cfg)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(warmup)
                cycles0 = put_cycles(scrape(port))
                cpu0, _ = proc_stats(d.pid)
                time.sleep(seconds)
                cpu, _ = proc_stats(d.pid)
                steady = memory(d.pid)
                # A text scrape, then a protobuf one (what a Prometheus with native histograms
                # asks for): the peak with both is what the process must be given.
                text = scrape(port)
                cycles = put_cycles(text) - cycles0
                after_text = memory(d.pid)["VmHWM"]
                pb = scrape_protobuf(port)
                _, hwm = proc_stats(d.pid)
                d.send_signal(signal.SIGTERM)
                d.wait(timeout=30)
                out[who] = {"cycles": cycles, "cpu_seconds": cpu - cpu0, "peak_rss_kib": hwm,
                            "rss_before_scrapes_kib": steady["VmRSS"], "hwm_before_scrapes_kib": steady["VmHWM"],
                            "anon_before_scrapes_kib": steady["RssAnon"], "hwm_after_text_kib": after_text,
                            "text_bytes": len(text), "protobuf_bytes": pb}
            else:
                r = subprocess.run([str(py), str(root / "bench/boto3_baseline.py"), endpoint,
                                    str(targets), str(seconds), str(interval), str(warmup)],
                                   capture_output=True, text=True, timeout=warmup + seconds + 300, env=env)
                b = json.loads(r.stdout.strip().splitlines()[-1])
                out[who] = {"cycles": b["cycles"], "cpu_seconds": b["cpu_seconds"], "peak_rss_kib": b["max_rss_kib"]}
        finally:
            server.stdin.close()
            server.wait(timeout=30)
        o = out[who]
        o["cycles_expected"] = targets * seconds / interval
        o["cpu_seconds_per_1000_cycles"] = 1000 * o["cpu_seconds"] / max(o["cycles"], 1)
    if baseline:
        out["cpu_ratio"] = out["s3canary"]["cpu_seconds_per_1000_cycles"] / max(out["boto3"]["cpu_seconds_per_1000_cycles"], 1e-9)
    return out


def hostile(mode, seconds):
    """Peak RSS of s3canary (one target, 2 s interval) against a hostile endpoint."""
    server = subprocess.Popen([str(bench_bin), "hostile", mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    endpoint = server.stdout.readline().strip()
    try:
        port = free_port()
        cfg = work / f"hostile-{mode}.toml"
        cfg.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\n[defaults]\ninterval = "2s"\n'
                       f'timeout = "1500ms"\n[[target]]\nname = "hostile"\nbucket = "hostile"\n'
                       f'region = "us-east-1"\nendpoint = "{endpoint}"\npath_style = true\n')
        log = open(work / f"hostile-{mode}.log", "w")
        d = subprocess.Popen([str(daemon_bin), "run", "--config", str(cfg)], env=env,
                             stdout=subprocess.DEVNULL, stderr=log)
        time.sleep(seconds)
        status = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=60).read()
        _, hwm = proc_stats(d.pid)
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=30)
        log.close()
        return {"peak_rss_kib": hwm, "status_bytes": len(status),
                "log_bytes": (work / f"hostile-{mode}.log").stat().st_size}
    finally:
        server.stdin.close()
        server.wait(timeout=30)


# The sidecar's ten minutes are mostly idle (one cycle every 30 s), so they run beside the other
# benchmarks: its memory does not depend on the machine's load, and its CPU is negligible.
import threading  # noqa: E402

side = {}
side_thread = threading.Thread(target=lambda: side.update(sidecar(60 if quick else 600, 30)))
side_thread.start()
print("overhead ...", flush=True)
results.update(bench("overhead", 50 if quick else 500))
print("schedule ...", flush=True)
results.update(bench("schedule", 1000, 5 if quick else 20))
print("scrape ...", flush=True)
results.update(bench("scrape", 1, 100, 1000))
print("shards ...", flush=True)
results.update(bench("shards", 10000, 16))
print("cpu next to the bare SDK ...", flush=True)
results.update(bench("sdk", *([50, 5] if quick else [200, 15])))
print("replication ...", flush=True)
results.update(bench("replication", *([1] if quick else [1, 10, 60])))
print("events ...", flush=True)
results.update(bench("events", *([5, 1000] if quick else [60, 0, 1000, 5000])))
print("hostile endpoints ...", flush=True)
results["hostile"] = {m: hostile(m, 10 if quick else 30) for m in ["endless", "message"]}
print("CPU per cycle as whole processes ...", flush=True)
results["cpu_process"] = cpu_process(*([2, 10, 1000, 4, 8] if quick else [7, 10, 1000, 5, 20]))
results["footprint"] = {}
# (targets, measured seconds, interval, warm-up seconds, with the baseline). Intervals keep the
# machine below saturation (the server shares its two cores), so cycles do not queue and CPU per
# cycle is the cost of a cycle, not of contention. 1000 boto3 threads and clients are not run:
# creating the clients alone takes longer than the run.
plan = ([(1, 10, 1, 3, True), (100, 10, 10, 12, True)] if quick else
        [(1, 60, 1, 5, True), (100, 60, 10, 15, True), (1000, 60, 30, 35, False)])
for targets, seconds, interval, warmup, baseline in plan:
    print(f"footprint {targets} targets ...", flush=True)
    results["footprint"][str(targets)] = footprint(targets, seconds, interval, warmup, baseline)

side_thread.join()
results["sidecar"] = side
json_out.write_text(json.dumps(results, indent=2) + "\n")

o = results["overhead"]
s = results["schedule"]
sc = results["scrape"]
lines = [
    f"Measured {results['date']} on {results['machine']}{' (quick run)' if quick else ''}; "
    "everything on 127.0.0.1 against the embedded S3 server. Regenerate with `scripts/bench`.",
    "",
    "| figure | measured | goal |",
    "|---|---|---|",
    f"| measurement overhead, 0 ms injected (get step minus injected delay) | p50 {o['injected_0ms']['p50_ms']:.3f} ms, p99 {o['injected_0ms']['p99_ms']:.3f} ms | p99 < 0.5 ms |",
    f"| measurement overhead, 20 ms injected | p50 {o['injected_20ms']['p50_ms']:.3f} ms, p99 {o['injected_20ms']['p99_ms']:.3f} ms | p99 < 0.5 ms |",
    f"| of which client side (reported minus the server's own time), 0 / 20 ms injected | p50 {o['injected_0ms']['client_p50_ms']:.3f} / {o['injected_20ms']['client_p50_ms']:.3f} ms, p99 {o['injected_0ms']['client_p99_ms']:.3f} / {o['injected_20ms']['client_p99_ms']:.3f} ms | — |",
    f"| request latency s3canary records (per attempt) minus injected delay, 0 / 20 ms injected | p50 {o['injected_0ms']['request_p50_ms']:.3f} / {o['injected_20ms']['request_p50_ms']:.3f} ms, p99 {o['injected_0ms']['request_p99_ms']:.3f} / {o['injected_20ms']['request_p99_ms']:.3f} ms | p99 < 0.5 ms |",
    f"| of which client side (recorded minus the server's own time), 0 / 20 ms injected | p50 {o['injected_0ms']['request_client_p50_ms']:.3f} / {o['injected_20ms']['request_client_p50_ms']:.3f} ms, p99 {o['injected_0ms']['request_client_p99_ms']:.3f} / {o['injected_20ms']['request_client_p99_ms']:.3f} ms | — |",
    f"| of which server side (embedded server's own work, injection excluded), 0 / 20 ms injected | p50 {o['injected_0ms']['server_p50_ms']:.3f} / {o['injected_20ms']['server_p50_ms']:.3f} ms, p99 {o['injected_0ms']['server_p99_ms']:.3f} / {o['injected_20ms']['server_p99_ms']:.3f} ms | — |",
    f"| scheduling lateness, {s['targets']} targets, 1 s interval ({s['starts']} starts) | p50 {s['lateness_p50_ms']:.3f} ms, p99 {s['lateness_p99_ms']:.3f} ms | p99 < 5 ms |",
]
for r in sc:
    lines.append(
        f"| /metrics at {r['targets']} target(s), six probes, after a healthy cycle | {r['series_per_target']} series a target "
        f"({r['series']} in all), text {r['bytes'] / 1024:.0f} KiB rendered in {r['render_p50_ms']:.1f} ms (p50); "
        f"protobuf with native histograms {r['protobuf_bytes'] / 1024:.0f} KiB in {r['protobuf_render_p50_ms']:.1f} ms "
        f"| ≤ 135 series a target (the contract, default probes) |")
sh = results["shards"]
worst = max(sh["rows"], key=lambda r: r["balance"])
moves = [r for r in sh["rows"] if r["moved_from_previous"] is not None]
off = max(moves, key=lambda r: abs(r["moved_from_previous"] - r["ideal_move"]))
lines.append(
    f"| {sh['targets']} targets over 1..{len(sh['rows'])} shards (rendezvous hashing) | largest shard at most "
    f"{worst['balance']:.3f} × the mean (at {worst['shards']}); adding a shard moves "
    f"{min(r['moved_from_previous'] for r in moves):.1%}-{max(r['moved_from_previous'] for r in moves):.1%} of the targets, "
    f"farthest from 1/N at {off['shards']} shards ({off['moved_from_previous']:.1%} vs {off['ideal_move']:.1%}) "
    f"| even split, about 1/N moved |")
sd = results["sdk"]
base = sd["bare"][0]
lines.append(
    f"| CPU per cycle of 13 requests ({sd['rounds']} alternating rounds of {sd['cycles']} cycles, one thread): "
    f"s3canary vs a bare aws-sdk-s3 loop of the same requests with the same settings "
    f"| {sd['s3canary_ms_per_cycle']:.2f} ms vs {base['ms_per_cycle']:.2f} ms; "
    f"s3canary {(base['s3canary_ratio'] - 1) * 100:+.1f}% (median of the rounds' ratios) | under +10% |")
for v in sd["bare"][1:]:
    lines.append(f"| CPU per cycle, {v['variant']} | {v['ms_per_cycle']:.2f} ms; "
                 f"s3canary {(v['s3canary_ratio'] - 1) * 100:+.1f}% against it | — |")
timed = next((v for v in sd["bare"] if "timed connector" in v["variant"]), None)
if timed:
    # Per round, the same loop through the timed connector minus through the SDK's client.
    diffs = sorted(t - b for t, b in zip(timed["rounds"], base["rounds"]))
    per_request = diffs[len(diffs) // 2] * 1000 / len(sd["cycle_ops"])
    lines.append(f"| the timed connector's cost per request (phases measured: the bare loop through it minus "
                 f"through the SDK's HTTP client, median of the rounds) | {per_request:+.1f} µs of CPU "
                 f"({timed['ms_per_cycle']:.2f} vs {base['ms_per_cycle']:.2f} ms a cycle) | — |")
cp = results["cpu_process"]
lines.append(
    f"| CPU per cycle as whole processes ({cp['targets']} targets every {cp['interval_ms'] / 1000:g} s, "
    f"{cp['rounds']} alternating rounds of {cp['seconds']:g} s, fresh processes, one server): `s3canary run` "
    f"vs a bare aws-sdk-s3 loop process (`bench bare-loop`) | {cp['s3canary_ms']:.2f} vs {cp['bare_ms']:.2f} ms; "
    f"ratio {cp['ratio']:.3f} (median of the rounds' ratios) | ≤ 1 |")
sc_ = results["sidecar"]
e = sc_["end"]
m = e["by_mapping"]
lines.append(
    f"| sidecar: one target, six probes, {sc_['interval_s']} s interval, after {sc_['seconds']} s "
    f"({int(e['cycles'])} cycles) | VmRSS {e['VmRSS'] / 1024:.1f} MiB (peak {e['VmHWM'] / 1024:.1f}): "
    f"anonymous {m.get('anonymous', 0) / 1024:.1f}, the binary's pages {m.get('binary', 0) / 1024:.1f}, "
    f"shared libraries {m.get('libraries', 0) / 1024:.1f}; {e['Threads']} threads, {e['fds']} fds | ≤ 10 MiB |")
for t, f in results["footprint"].items():
    a = f["s3canary"]
    if "boto3" in f:
        b = f["boto3"]
        lines.append(
            f"| footprint, {t} target(s), {int(a['cycles'])} vs {int(b['cycles'])} cycles (of {int(a['cycles_expected'])} due): CPU per 1000 cycles | s3canary {a['cpu_seconds_per_1000_cycles']:.2f} s vs boto3 {b['cpu_seconds_per_1000_cycles']:.2f} s (ratio {f['cpu_ratio']:.3f}) | < 0.1 of the baseline |")
        lines.append(
            f"| footprint, {t} target(s): peak RSS | s3canary {a['peak_rss_kib'] / 1024:.1f} MiB vs boto3 {b['peak_rss_kib'] / 1024:.1f} MiB | < 50 MiB at 1000 targets |")
    else:
        lines.append(
            f"| footprint, {t} targets, {int(a['cycles'])} cycles (of {int(a['cycles_expected'])} due): CPU per 1000 cycles | s3canary {a['cpu_seconds_per_1000_cycles']:.2f} s (baseline not run) | < 0.1 of the baseline |")
        lines.append(
            f"| footprint, {t} targets: RSS before scraping, peak after a text ({a['text_bytes'] / 1e6:.1f} MB) "
            f"and after a protobuf ({a['protobuf_bytes'] / 1e6:.1f} MB) scrape | {a['rss_before_scrapes_kib'] / 1024:.1f} MiB "
            f"(anonymous {a['anon_before_scrapes_kib'] / 1024:.1f}), {a['hwm_after_text_kib'] / 1024:.1f} MiB, "
            f"{a['peak_rss_kib'] / 1024:.1f} MiB | ≤ 50 MiB |")
h = results["hostile"]
healthy = results["footprint"].get("1", {}).get("s3canary", {}).get("peak_rss_kib")
lines.append(
    f"| peak RSS, one target against a hostile endpoint: endless GetObject body / 20 MB error messages "
    f"| {h['endless']['peak_rss_kib'] / 1024:.1f} / {h['message']['peak_rss_kib'] / 1024:.1f} MiB"
    f"{f' (healthy, one target: {healthy / 1024:.1f} MiB)' if healthy else ''}; status API "
    f"{h['message']['status_bytes'] / 1024:.1f} KiB, log {h['message']['log_bytes'] / 1024:.1f} KiB "
    f"| bounded (before: 5 GiB and 475 MiB) |")
for r in results["replication"]:
    if "measured_s" in r:
        lines.append(
            f"| replication lag {r['simulated_s']:g} s simulated | measured {r['measured_s']:.3f} s, error {r['error_ms']:.0f} ms (allowed {r['allowed_ms']:.0f}), {r['destination_heads']} + {r['source_heads']} HEADs | error within max(100 ms, 5%) |")
for e in results["events"]:
    per = sum(e["sqs_requests"].values()) / max(e["cycles"], 1)
    lines.append(
        f"| event notification delivered {e['delay_ms']} ms after the change ({e['notifications']} notifications) "
        f"| measured minus delivered: p50 {e['error_p50_ms']:.1f} ms, p99 {e['error_p99_ms']:.1f} ms; "
        f"{per:.1f} SQS requests per cycle, so {per * 120 + 180:.0f} per hour per queue at a 30 s interval "
        f"(with three idle long polls a minute) | error < 100 ms |")
md_out.write_text("\n".join(lines) + "\n")
print("\n".join(lines))
