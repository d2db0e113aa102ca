#!/usr/bin/env python3
"""The cdn probe through a real caching proxy: nginx from Debian with proxy_cache in front of
the embedded S3 server (tests/e2e/fault_s3.rs, whose objects anyone may GET, as a CDN origin
allows), on loopback ports. Three proxies, three targets:

- no caching: the probe passes;
- 404s cached for 3 s (`proxy_cache_valid 404 3s`): the GET before the put seeds a negative
  entry, so the read after the put is a cdn_read_after_write violation lasting about 3 s;
- 200s cached for 3 s: the read after the put caches the first version, so the read after the
  overwrite is a cdn_read_after_overwrite violation lasting about 3 s.

Staleness is measured from the write's acknowledgement to the first current read through the
proxy. nginx keeps time in whole seconds and drops an entry once its expiry second has passed,
so a 3 s entry lives 3-4 s; re-reads are at most 500 ms apart: the figure is checked within
2.5-5 s and reported. Nothing is left in the bucket.

usage: nginx_test.py S3CANARY_BINARY FAULT_S3_BINARY OUTPUT_DIR
"""
import pathlib
import signal
import shutil
import sys
import urllib.error
import urllib.request

import boto3

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from support import (Processes, check, embedded_env, failures, free_port, get,  # noqa: E402
                     nginx_conf, sample, target_toml, wait)

binary, fault_s3, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3]).resolve() / "cdn"
shutil.rmtree(out, ignore_errors=True)
(out / "tmp").mkdir(parents=True)
s3_port, control_port, daemon_port = free_port(), free_port(), free_port()
ports = {"plain": free_port(), "negative": free_port(), "positive": free_port()}
nginx = shutil.which("nginx") or "/usr/sbin/nginx"
procs = Processes(out)
start = procs.start


def metric(name, **labels):
    return sample(get(f"http://127.0.0.1:{daemon_port}/metrics"), name, **labels)


def proxy(port, cache):
    caching = f"proxy_cache {cache[0]}; proxy_cache_valid {cache[1]} 3s;" if cache else ""
    return f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{s3_port}/cdn/;
            {caching}
        }}
    }}"""


conf = nginx_conf(out, f"""    proxy_cache_path {out}/cache-404 levels=1 keys_zone=misses:1m max_size=10m inactive=1m use_temp_path=off;
    proxy_cache_path {out}/cache-200 levels=1 keys_zone=hits:1m max_size=10m inactive=1m use_temp_path=off;
    add_header X-Cache-Status $upstream_cache_status always;
    {proxy(ports['plain'], None)}
    {proxy(ports['negative'], ('misses', 404))}
    {proxy(ports['positive'], ('hits', 200))}
""")
(out / "nginx.conf").write_text(conf)
config = f'[server]\nlisten = "127.0.0.1:{daemon_port}"\n\n[defaults]\ninterval = "10s"\ntimeout = "9s"\nconfirm_interval = "0s"\n'
for name, port in ports.items():
    config += target_toml(name, "cdn", f"http://127.0.0.1:{s3_port}",
                          f'probes = ["put", "get", "overwrite", "delete", "cdn"]\n'
                          f'\n[target.cdn]\nurl = "http://127.0.0.1:{port}/"\n')
(out / "s3canary.toml").write_text(config)
env = embedded_env()

try:
    start("fault-s3", [fault_s3, f"127.0.0.1:{s3_port}", f"127.0.0.1:{control_port}", "cdn"])
    wait("the embedded S3 server is up", 30, lambda: (out / "fault-s3.log").read_text().startswith("ready"))
    start("nginx", [nginx, "-p", str(out), "-c", str(out / "nginx.conf")])
    def missing_is_404():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{ports['plain']}/absent", timeout=5)
        except urllib.error.HTTPError as e:
            return e.code == 404
        return False
    wait("nginx proxies the bucket (a missing key is a 404)", 30, missing_is_404)
    daemon = start("s3canary", [binary, "run", "--config", str(out / "s3canary.toml")], env=env)
    wait("every target ran the cdn probe twice", 60, lambda: all(
        metric("s3canary_probe_runs_total", target=t, probe="cdn") >= 2 for t in ports))
    wait("the negative cache was seen", 60, lambda: metric(
        "s3canary_consistency_violations_total", target="negative", check="cdn_read_after_write") >= 1)
    wait("the positive cache was seen", 60, lambda: metric(
        "s3canary_consistency_violations_total", target="positive", check="cdn_read_after_overwrite") >= 1)

    plain_failures = metric("s3canary_probe_failures_total", target="plain", probe="cdn")
    plain_violations = metric("s3canary_consistency_violations_total", target="plain")
    check(plain_failures == 0 and plain_violations == 0,
          f"no caching: the cdn probe passes ({plain_failures:.0f} failures, {plain_violations:.0f} violations)")
    for target, chk in [("negative", "cdn_read_after_write"), ("positive", "cdn_read_after_overwrite")]:
        n = metric("s3canary_staleness_seconds_count", target=target, check=chk)
        total = metric("s3canary_staleness_seconds_sum", target=target, check=chk)
        mean = total / n if n else 0.0
        print(f"  {target}: {chk} x{n:.0f}, staleness mean {mean:.2f} s (cache TTL 3 s)")
        check(2.5 <= mean <= 5.0, f"{target}: the stale view lasted the 3 s TTL on nginx's clock ({mean:.2f} s)")
        other = "cdn_read_after_overwrite" if chk == "cdn_read_after_write" else "cdn_read_after_write"
        check(metric("s3canary_consistency_violations_total", target=target, check=other) == 0,
              f"{target}: no {other} violation")
        check(metric("s3canary_probe_failures_total", target=target, probe="cdn", reason="stale_read") >= 1,
              f"{target}: the cdn probe fails with stale_read")
        puts = metric("s3canary_probe_runs_total", target=target, probe="put")
        deletes = metric("s3canary_probe_runs_total", target=target, probe="delete")
        check(deletes == puts and metric("s3canary_probe_failures_total", target=target, probe="delete") == 0,
              f"{target}: the S3 steps after a stale CDN still run ({puts:.0f} puts, {deletes:.0f} deletes)")
    status = get(f"http://127.0.0.1:{daemon_port}/api/v1/status")
    check("x-cache-status: HIT" in status, "the proxy's cache header is in the failure details")
    daemon.send_signal(signal.SIGTERM)
    check(daemon.wait(timeout=30) == 0, "the daemon exits 0 on SIGTERM")
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}", region_name="us-east-1",
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    left = s3.list_objects_v2(Bucket="cdn").get("KeyCount", 0)
    check(left == 0, f"nothing is left in the bucket ({left})")
finally:
    procs.stop()

if failures:
    for name in ("s3canary", "nginx-error"):
        f = out / f"{name}.log"
        if f.exists():
            print(f"--- {name} (tail)")
            print("\n".join(f.read_text().splitlines()[-15:]))
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("cdn probe through nginx: all checks passed")
