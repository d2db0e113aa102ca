#!/usr/bin/env python3
"""Lists the functions a running daemon executes, for the linker to place together
(scripts/hot-functions, then scripts/build-dist).

usage: hot_functions.py BINARY OUT

Runs BINARY (a dist build, with symbols) under valgrind's callgrind for a minute against the
embedded server with faults (the `fault-s3` example, a process of its own so its code is not
counted): one target with every probe that needs nothing but S3 (put, get, list, overwrite,
delete, conditional, durability, checksum, multipart), a minute of cycles with a fault profile
switched on and off, every /metrics format, the status page and API, a reload. Writes the
mangled names of the functions of BINARY that ran, one a line, in the order callgrind first
saw them (start-up first).
"""
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request

root = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root / "tests"))
sys.path.insert(0, str(root / "bench"))
from support import free_port  # noqa: E402
from procs import ACCEPT, ENV as env  # noqa: E402

binary, out = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2])
work = pathlib.Path(os.environ.get("BENCH_WORK", "/tmp/s3canary-bench"))
work.mkdir(parents=True, exist_ok=True)

s3_port, control_port, port = free_port(), free_port(), free_port()
server = subprocess.Popen([str(root / "target/release/examples/fault-s3"), f"127.0.0.1:{s3_port}",
                           f"127.0.0.1:{control_port}", "hot-canary"], stdout=subprocess.PIPE, text=True, env=env)
assert server.stdout.readline().strip() == "ready"
cfg = work / "hot.toml"
cfg.write_text(f'''[server]
listen = "127.0.0.1:{port}"
[defaults]
interval = "10s"
timeout = "8s"
[[target]]
name = "hot"
bucket = "hot-canary"
region = "us-east-1"
endpoint = "http://127.0.0.1:{s3_port}"
path_style = true
probes = ["put", "get", "list", "overwrite", "delete", "conditional", "durability", "checksum", "multipart"]
[target.durability]
objects = 2
[target.multipart]
interval = "1m"
''')
callgrind_out = work / "hot.callgrind"
daemon = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind_out}",
                           "--compress-strings=no", "--compress-pos=no", "--demangle=no",
                           str(binary), "run", "--config", str(cfg)],
                          env=env, stdout=subprocess.DEVNULL, stderr=open(work / "hot.log", "w"))


def get(path, accept=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Accept": accept} if accept else {})
    return urllib.request.urlopen(req, timeout=60).read()


def post(url):
    urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=60).read()


try:
    start = time.monotonic()
    while True:
        try:
            get("/-/healthy")
            break
        except OSError:
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited; see {work / 'hot.log'}")
            if time.monotonic() - start > 120:
                raise
            time.sleep(0.5)
    for n in range(6):
        time.sleep(10)
        for a in ACCEPT:
            get("/metrics", a)
        get("/")
        get("/api/v1/status")
        # Failures are part of every day: a fault for a cycle, then none.
        post(f"http://127.0.0.1:{control_port}/-/demo/faults/{['flaky', 'none'][n % 2]}")
    post(f"http://127.0.0.1:{port}/-/reload")
    time.sleep(5)
finally:
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=120)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)

names, seen, ob = [], set(), None
for line in open(callgrind_out, errors="replace"):
    if line.startswith("ob="):
        ob = line[3:].strip()
    elif line.startswith("fn=") and ob == str(binary):
        name = line[3:].strip()
        # Symbols only; callgrind names code it has no symbol for by its address.
        if name not in seen and not name.startswith("0x") and " " not in name:
            seen.add(name)
            names.append(name)
out.write_text("".join(n + "\n" for n in names))
print(f"{len(names)} functions of {binary.name} ran; wrote {out}")
