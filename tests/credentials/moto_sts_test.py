#!/usr/bin/env python3
"""Credentials from a web identity, as IRSA and EKS Pod Identity give them, against moto's STS
(aws-config follows AWS_ENDPOINT_URL_STS) and moto's S3:

- with the token file in place, a running daemon assumes the role through STS and exports when
  the session expires (`s3canary_credentials_expiry_timestamp_seconds`, an hour ahead as STS
  issues it; STS's own answer, asked directly, says the same), with no failed load;
- with the token file gone, `s3canary once` fails the put as `credentials_unavailable` (not
  `connection`), in words that say the credential provider failed, and exits 1.

No static keys are in the environment: every request is signed with the assumed session.

usage: moto_sts_test.py S3CANARY_BINARY OUTPUT_DIR
"""
import datetime
import os
import pathlib
import subprocess
import sys
import time
import urllib.request

import boto3

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from support import Daemon, check, failures, free_port, wait  # noqa: E402

binary, out = sys.argv[1], pathlib.Path(sys.argv[2]) / "credentials"
out.mkdir(parents=True, exist_ok=True)
moto_port, daemon_port = free_port(), free_port()
url = f"http://127.0.0.1:{moto_port}"
role = "arn:aws:iam::123456789012:role/s3canary"
token = out / "token"
token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6czNjYW5hcnk6czNjYW5hcnkifQ.c2ln\n")

# The daemon's environment: a web identity and nothing else (no keys, no profile, no IMDS).
env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
env.update(AWS_ROLE_ARN=role, AWS_WEB_IDENTITY_TOKEN_FILE=str(token), AWS_ENDPOINT_URL_STS=url,
           AWS_EC2_METADATA_DISABLED="true", AWS_REGION="us-east-1",
           AWS_CONFIG_FILE=str(out / "no-config"), AWS_SHARED_CREDENTIALS_FILE=str(out / "no-credentials"))
env.pop("S3CANARY_CONFIG", None)

moto = subprocess.Popen([str(pathlib.Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                         "-p", str(moto_port)], stdout=open(out / "moto.log", "w"), stderr=subprocess.STDOUT)
daemon = None
try:
    keys = dict(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    wait("moto answers", 30, lambda: urllib.request.urlopen(url, timeout=2).status == 200)
    boto3.client("s3", endpoint_url=url, **keys).create_bucket(Bucket="canary")

    cfg = out / "s3canary.toml"
    cfg.write_text(f'[server]\nlisten = "127.0.0.1:{daemon_port}"\n\n[defaults]\ninterval = "2s"\n'
                   f'timeout = "1500ms"\n\n[[target]]\nname = "irsa"\nbucket = "canary"\n'
                   f'region = "us-east-1"\nendpoint = "{url}"\npath_style = true\n'
                   f'probes = ["put", "get"]\n')
    daemon = Daemon(binary, cfg, daemon_port, out / "daemon.log", env)
    daemon.ready()
    wait("the daemon's cycles pass with the assumed session", 30,
         lambda: daemon.value("s3canary_probe_runs_total", target="irsa", probe="put") >= 2
         and daemon.value("s3canary_probe_success", target="irsa", probe="put") == 1)
    expiry = daemon.value("s3canary_credentials_expiry_timestamp_seconds", target="irsa")
    # What moto's STS issues for the same call, asked directly.
    direct = boto3.client("sts", endpoint_url=url, **keys).assume_role_with_web_identity(
        RoleArn=role, RoleSessionName="direct", WebIdentityToken=token.read_text().strip())
    issued = direct["Credentials"]["Expiration"].timestamp()
    check(abs(expiry - issued) < 120,
          f"the exported expiry is the session's, as STS issues it ({expiry:.0f} vs {issued:.0f}, "
          f"{datetime.timedelta(seconds=round(expiry - time.time()))} ahead)")
    check(daemon.value("s3canary_credentials_refresh_failures_total", target="irsa") == 0,
          "no load of the credentials failed")
    daemon.stop()
    daemon = None

    token.unlink()
    r = subprocess.run([binary, "once", "--config", str(cfg)], env=env, capture_output=True,
                       text=True, timeout=60)
    (out / "once-without-token.txt").write_text(r.stdout + r.stderr)
    check(r.returncode == 1, f"once exits 1 without the token file ({r.returncode})")
    check("credentials_unavailable" in r.stdout and "connection" not in r.stdout,
          "the put fails as credentials_unavailable, not connection")
    check("the credential provider failed" in r.stdout, "and says the credential provider failed")
finally:
    if daemon is not None:
        daemon.kill()
    moto.terminate()
    try:
        moto.wait(timeout=10)
    except subprocess.TimeoutExpired:
        moto.kill()

print(f"credentials: {len(failures)} failed")
sys.exit(1 if failures else 0)
