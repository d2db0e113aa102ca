#!/usr/bin/env python3
"""The probe suite against another real S3 implementation on 127.0.0.1 (moto's server, s3rver
from npm, or Ceph RGW from Debian's packages, a single-node cluster started by start_rgw.sh). What the store really does is first checked directly with boto3 (does it
refuse a conditional write it must refuse?); then `s3canary once` runs every probe, and each
result must agree with what the store did. The results go to OUTPUT_DIR/stores/STORE.json, from
which tests/stores/matrix.py renders the compatibility matrix of README.md. Last, a daemon
watches a durability set on the store (on a versioned bucket where the store has versioning).

usage: stores_test.py moto|s3rver|rgw|embedded S3CANARY_BINARY OUTPUT_DIR
"""
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.request

import boto3
import botocore

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from support import Daemon, check, failures, free_port, get, wait  # noqa: E402
from stores.paths import Direct, describe, expected_checksum_reasons  # noqa: E402

store, binary, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3]) / "stores"
out.mkdir(parents=True, exist_ok=True)
root = pathlib.Path(__file__).resolve().parents[2]


port = free_port()
url = f"http://127.0.0.1:{port}"
keys = {"moto": ("testing", "testing"), "s3rver": ("S3RVER", "S3RVER"),
        "rgw": ("S3CANARYTESTKEY", "s3canary-test-secret"),
        "embedded": ("s3canary-embedded", "s3canary-embedded-secret")}[store]
env = dict(os.environ, AWS_ACCESS_KEY_ID=keys[0], AWS_SECRET_ACCESS_KEY=keys[1],
           AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
env.pop("AWS_PROFILE", None)
data = (out / f"{store}-data").resolve()
# Every run starts from an empty store: a run before this one in the same tree (s3rver keeps its
# objects on disk) must not leave its objects to be found as canaries left behind.
import shutil
shutil.rmtree(data, ignore_errors=True)
data.mkdir()
if store == "moto":
    cmd = [str(pathlib.Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    version = subprocess.run([sys.executable, "-c", "import moto; print(moto.__version__)"],
                             capture_output=True, text=True).stdout.strip()
elif store == "embedded":
    # The embedded server of `demo` on its own (tests/e2e/fault_s3.rs), built beside the binary.
    fault_s3 = pathlib.Path(binary).resolve().parent / "examples" / "fault-s3"
    cmd = [str(fault_s3), f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}", "canary"]
    locked = (root / "Cargo.lock").read_text().split('name = "s3s-fs"\nversion = "', 1)[1]
    version = "s3s-fs " + locked.split('"', 1)[0]
elif store == "rgw":
    cmd = [str(root / "tests/stores/start_rgw.sh"), str(data), str(free_port()), str(port), *keys]
    version = subprocess.run(["radosgw", "--version"], capture_output=True, text=True).stdout.split()[2]
else:
    s3rver = root / ".npm/node_modules/.bin/s3rver"
    cmd = [str(s3rver), "-d", str(data), "-a", "127.0.0.1", "-p", str(port), "--silent",
           "--configure-bucket", "canary"]
    version = json.loads((root / ".npm/node_modules/s3rver/package.json").read_text())["version"]
server = subprocess.Popen(cmd, stdout=open(out / f"{store}.log", "w"), stderr=subprocess.STDOUT, env=env)


def stop():
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
    # The Ceph daemons detach: stop them by their pid files, and wait (bounded) until gone.
    pids = []
    for pid_file in (data / "run").glob("*.pid") if store == "rgw" else []:
        try:
            pids.append(int(pid_file.read_text().strip()))
            os.kill(pids[-1], 15)
        except (ValueError, ProcessLookupError):
            pass
    end = time.time() + 15
    for pid in pids:
        while time.time() < end and pathlib.Path(f"/proc/{pid}/cmdline").exists() \
                and pathlib.Path(f"/proc/{pid}/cmdline").read_bytes():
            time.sleep(0.2)
        try:
            if pathlib.Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, 9)
        except (FileNotFoundError, ProcessLookupError):
            pass


def paths(direct):
    """The checksum and multipart probes of a running daemon on this store, each result held
    against what the store did when asked directly (`direct`): ten cycles visit every
    algorithm in both forms, uploads go in parts every 10 s, and the upload sweep runs at start.
    Returns the matrix cells {"checksum": ..., "multipart": ...}."""
    port = free_port()
    cfg = out / f"{store}-paths.toml"
    cfg.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\n\n[defaults]\ninterval = "3s"\n'
                   f'timeout = "2500ms"\n\n[[target]]\nname = "paths"\nbucket = "canary"\n'
                   f'region = "us-east-1"\nendpoint = "{url}"\npath_style = true\n'
                   f'probes = ["put", "checksum", "multipart"]\n\n[target.multipart]\n'
                   f'interval = "10s"\n')
    daemon = Daemon(binary, cfg, port, out / f"{store}-paths.log", env)
    cells = {}
    try:
        daemon.ready()
        runs = lambda p: daemon.value("s3canary_probe_runs_total", target="paths", probe=p)  # noqa: E731
        wait(f"{store}: ten checksum cycles and two multipart uploads", 120,
             lambda: runs("checksum") >= 10 and runs("multipart") >= 2)
        status = json.loads(get(f"http://127.0.0.1:{port}/api/v1/status"))["targets"][0]
        metrics = daemon.metrics()
        daemon.stop()
        for probe in ("checksum", "multipart"):
            reasons = set()
            for line in metrics.splitlines():
                if line.startswith("s3canary_probe_failures_total{") and f'probe="{probe}"' in line \
                        and not line.endswith(" 0"):
                    reasons.add(line.split('reason="', 1)[1].split('"', 1)[0])
            cells[probe] = "ok" if not reasons else ", ".join(sorted(reasons))
        want = expected_checksum_reasons(direct)
        check(cells["checksum"] == ("ok" if not want else ", ".join(sorted(want))),
              f"{store}: checksum finds {sorted(want) or 'nothing'}, as the store's own answers say "
              f"({cells['checksum']})")
        want = "ok" if direct["multipart_completes"] else "a failure"
        check((cells["multipart"] == "ok") == direct["multipart_completes"],
              f"{store}: multipart is {want}, as the store's own answers say ({cells['multipart']})")
        uploads = status.get("multipart_uploads") or {}
        check(bool(uploads.get("unsupported")) == (not direct["lists_uploads"]),
              f"{store}: the upload sweep says it could not look exactly when the store does not list "
              f"uploads ({uploads})")
        log = (out / f"{store}-paths.log").read_text()
        check(("ETag that is not" in log) == (not direct["multipart_etag_has_parts"]),
              f"{store}: a plain multipart ETag is noted in the log exactly when the store gives one")
        left = [o["Key"] for o in s3.list_objects_v2(Bucket="canary", Prefix="s3canary/").get("Contents", [])]
        check(left == [], f"{store}: no canary is left by the checksum and multipart probes ({left})")
        if direct["lists_uploads"]:
            open_ = s3.list_multipart_uploads(Bucket="canary", Prefix="s3canary/").get("Uploads", [])
            check(open_ == [], f"{store}: no multipart upload is left open ({len(open_)})")
    finally:
        daemon.kill()
    return cells


def durability(s3, bucket, versioned):
    """The durability set on this store, watched by a running daemon: seeded once; an object
    deleted and one overwritten behind its back are reported lost and corrupt; a restart
    recognises the set and writes nothing; only `durability reseed` restores it. On a versioned
    bucket the set is plain current versions and the daemon adds none."""
    if versioned:
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    folder, n, port = "s3canary/durability/keeper/", 3, free_port()
    cfg = out / f"{store}-durability.toml"
    cfg.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\n\n[defaults]\ninterval = "2s"\n'
                   f'timeout = "1500ms"\n\n[[target]]\nname = "keeper"\nbucket = "{bucket}"\n'
                   f'region = "us-east-1"\nendpoint = "{url}"\npath_style = true\n'
                   f'probes = ["put", "durability"]\n\n[target.durability]\nobjects = {n}\n')

    def listed():
        got = s3.list_objects_v2(Bucket=bucket, Prefix=folder).get("Contents", [])
        # s3s-fs (the embedded server) lists objects without their ETag: HEAD gives it.
        return {o["Key"]: o.get("ETag") or s3.head_object(Bucket=bucket, Key=o["Key"])["ETag"] for o in got}

    def versions():
        v = s3.list_object_versions(Bucket=bucket, Prefix=folder)
        return v.get("Versions", []), v.get("DeleteMarkers", [])

    def whole(key):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return hashlib.sha256(body).hexdigest() == key.rsplit("-", 1)[1]

    def state(d, s):
        return d.value("s3canary_durability_objects", target="keeper", state=s)

    daemon = Daemon(binary, cfg, port, out / f"{store}-durability.log", env)
    try:
        daemon.ready()
        wait(f"{store}: durability set seeded and counted", 30, lambda: state(daemon, "present") == n
             and daemon.value("s3canary_probe_success", target="keeper", probe="durability") == 1)
        seeded = listed()
        keys = sorted(seeded)
        check(len(keys) == n and all(whole(k) for k in keys),
              f"{store}: {n} objects whose SHA-256 is in their key")
        if versioned:
            vs, markers = versions()
            check(len(vs) == n and all(v["IsLatest"] for v in vs) and not markers,
                  f"{store}: on a versioned bucket, {n} current versions and no delete marker "
                  f"({len(vs)}, {len(markers)})")
        # Behind the daemon's back: the second object deleted, the third overwritten.
        s3.delete_object(Bucket=bucket, Key=keys[1])
        s3.put_object(Bucket=bucket, Key=keys[2], Body=b"other bytes")
        wait(f"{store}: one lost and one corrupt", 30, lambda: state(daemon, "lost") == 1
             and state(daemon, "corrupt") == 1 and state(daemon, "present") == n - 2)
        for reason in ("object_lost", "object_corrupt"):
            check(daemon.value("s3canary_probe_failures_total", target="keeper", probe="durability",
                               reason=reason) >= 1, f"{store}: the durability probe fails as {reason}")
        daemon.stop()

        daemon = Daemon(binary, cfg, port, out / f"{store}-durability-restarted.log", env)
        daemon.ready()
        wait(f"{store}: after a restart the lost object is still lost, not re-seeded", 30,
             lambda: state(daemon, "lost") == 1 and state(daemon, "corrupt") == 1)
        now = listed()
        check(keys[1] not in now and now.get(keys[0]) == seeded[keys[0]],
              f"{store}: the daemon wrote nothing to the set ({len(now)} objects)")
        if versioned:
            vs, markers = versions()
            check(len(vs) == n + 1 and len(markers) == 1,
                  f"{store}: versions are the seed's and the test's only ({len(vs)}, {len(markers)})")
        daemon.stop()

        r = subprocess.run([binary, "durability", "reseed", "--target", "keeper", "--config", str(cfg)],
                           env=env, capture_output=True, text=True, timeout=60)
        (out / f"{store}-reseed.log").write_text(r.stderr)
        now = listed()
        check(r.returncode == 0 and sorted(now) == keys and all(whole(k) for k in keys),
              f"{store}: reseed restores the set ({r.returncode})")
        check(now[keys[0]] == seeded[keys[0]], f"{store}: reseed leaves a whole object alone")
        daemon = Daemon(binary, cfg, port, out / f"{store}-durability-reseeded.log", env)
        daemon.ready()
        wait(f"{store}: the set is whole again", 30, lambda: state(daemon, "present") == n
             and state(daemon, "lost") == 0 and state(daemon, "corrupt") == 0
             and daemon.value("s3canary_probe_success", target="keeper", probe="durability") == 1)
        daemon.stop()
    finally:
        daemon.kill()


try:
    if store == "rgw" and server.wait(timeout=180) != 0:
        # CI shows only this output: the logs' last lines say why.
        for log in [out / "rgw.log", *sorted((data / "log").glob("*.log"))]:
            print(f"--- {log} (tail)")
            print("\n".join(log.read_text(errors="replace").splitlines()[-8:]))
        raise SystemExit(f"the Ceph cluster did not start; see {out / 'rgw.log'} and {data / 'log'}")
    end = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except urllib.error.HTTPError:
            break  # it answers, with an error for the bare root: up
        except Exception:
            if time.time() > end:
                raise SystemExit(f"{store} did not start; see {out / (store + '.log')}")
            time.sleep(0.2)
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id=keys[0], aws_secret_access_key=keys[1],
                      config=botocore.config.Config(s3={"addressing_style": "path"}))
    if store in ("moto", "rgw"):
        s3.create_bucket(Bucket="canary")

    # What the store does, asked directly.
    def refuses(**cond):
        s3.put_object(Bucket="canary", Key="direct/probe", Body=b"v1")
        try:
            s3.put_object(Bucket="canary", Key="direct/probe", Body=b"v2", **cond)
            return False
        except botocore.exceptions.ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"] in (412, 409, 304)
    def current_accepted():
        etag = s3.put_object(Bucket="canary", Key="direct/probe", Body=b"v1")["ETag"]
        try:
            s3.put_object(Bucket="canary", Key="direct/probe", Body=b"v2", IfMatch=etag)
            return True
        except botocore.exceptions.ClientError:
            return False
    direct = {
        "if_none_match_enforced": refuses(IfNoneMatch="*"),
        "if_match_stale_enforced": refuses(IfMatch='"0123456789abcdef0123456789abcdef"'),
        "if_match_current_accepted": current_accepted(),
    }
    s3.delete_object(Bucket="canary", Key="direct/probe")
    # The paths applications use, asked directly; boto3 itself without default checksums.
    plain = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                         aws_access_key_id=keys[0], aws_secret_access_key=keys[1],
                         config=botocore.config.Config(s3={"addressing_style": "path"},
                                                       request_checksum_calculation="when_required",
                                                       response_checksum_validation="when_required"))
    asked = Direct(url, "canary", keys)
    direct.update(asked.checksums())
    direct.update(asked.multipart(plain))
    direct["does"] = describe(direct)
    print(f"{store} {version}: {direct}")

    cfg = out / f"{store}.toml"
    cfg.write_text(f'[[target]]\nname = "{store}"\nbucket = "canary"\nregion = "us-east-1"\n'
                   f'endpoint = "{url}"\npath_style = true\n')
    r = subprocess.run([binary, "once", "--config", str(cfg), "--format", "json"], env=env,
                       capture_output=True, text=True, timeout=120)
    (out / f"{store}-once.json").write_text(r.stdout)
    (out / f"{store}-once.log").write_text(r.stderr)
    cycle = json.loads(r.stdout)["targets"][0]["cycle"]
    results = {}
    for p in cycle["results"]:
        o = p["outcome"]
        results[p["probe"]] = "ok" if o and o["result"] == "success" else (o or {}).get("reason", "not run")
    conditional_enforced = direct["if_none_match_enforced"] and direct["if_match_stale_enforced"]
    for probe in ["put", "get", "list", "overwrite", "delete"]:
        check(results.get(probe) == "ok", f"{store}: {probe} passes ({results.get(probe)})")
    if not conditional_enforced:
        want = "precondition_ignored"
    elif not direct["if_match_current_accepted"]:
        want = "client_error"  # the write that must succeed was refused (412)
    else:
        want = "ok"
    check(results.get("conditional") == want,
          f"{store}: conditional is {want}, as the store's own answers say ({results.get('conditional')})")
    check(r.returncode == (0 if want == "ok" else 1), f"{store}: once exits {r.returncode}")
    left = [o["Key"] for o in s3.list_objects_v2(Bucket="canary", Prefix="s3canary/").get("Contents", [])]
    check(left == [], f"{store}: no canary is left ({left})")
    if store in ("moto", "rgw"):
        # Versioned buckets: a cycle leaves no version and no delete marker under the prefix.
        s3.create_bucket(Bucket="versioned")
        s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
        vcfg = out / f"{store}-versioned.toml"
        vcfg.write_text(cfg.read_text().replace('bucket = "canary"', 'bucket = "versioned"'))
        subprocess.run([binary, "once", "--config", str(vcfg)], env=env, capture_output=True,
                       text=True, timeout=120)
        v = s3.list_object_versions(Bucket="versioned", Prefix="s3canary/")
        left = [(x["Key"], x["VersionId"]) for x in v.get("Versions", []) + v.get("DeleteMarkers", [])]
        check(left == [], f"{store}: no version or delete marker left on a versioned bucket ({left})")
    results.update(paths(direct))
    before = len(failures)
    durability(s3, "durable" if store in ("moto", "rgw") else "canary", store in ("moto", "rgw"))
    results["durability"] = "ok" if len(failures) == before else "failed"
    (out / f"{store}.json").write_text(json.dumps(
        {"store": store, "version": version, "direct": direct, "probes": results}, indent=2) + "\n")
finally:
    stop()

print(f"{store}: {len(failures)} failed")
sys.exit(1 if failures else 0)
