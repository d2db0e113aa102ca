#!/usr/bin/env python3
"""A protocol-translating proxy in front of moto's CloudWatch: clients speak rpc-v2-cbor (what
aws-sdk-cloudwatch 1.100+ and botocore send), moto speaks awsJson1.0. CBOR in, JSON to moto,
CBOR back. Test infrastructure only: see README, "Why the tests need a shim".

usage: cbor_shim.py LISTEN_PORT MOTO_URL
"""
import datetime
import gzip
import http.server
import json
import sys
import urllib.error
import urllib.request

import cbor2

TARGET_PREFIX = "GraniteServiceVersion20100801"
TIMESTAMP_KEYS = {"Timestamp", "Timestamps", "StartTime", "EndTime", "StateUpdatedTimestamp",
                  "AlarmConfigurationUpdatedTimestamp", "StateTransitionedTimestamp",
                  "LastModified"}


def to_json(v):
    """CBOR-decoded values -> JSON-able (datetimes become epoch seconds, as awsJson wants)."""
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, datetime.datetime):
        return v.timestamp()
    if isinstance(v, bytes):
        import base64
        return base64.b64encode(v).decode()
    return v


def to_cbor(v, key=None):
    """JSON answer -> CBOR-able (epoch-second timestamps become datetimes, tag 1)."""
    if isinstance(v, dict):
        return {k: to_cbor(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [to_cbor(x, key) for x in v]
    if key in TIMESTAMP_KEYS and isinstance(v, (int, float)):
        return datetime.datetime.fromtimestamp(v, tz=datetime.timezone.utc)
    if key in TIMESTAMP_KEYS and isinstance(v, str):
        return datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
    return v


class Shim(http.server.BaseHTTPRequestHandler):
    moto = ""

    def do_POST(self):
        op = self.path.rsplit("/", 1)[-1]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = to_json(cbor2.loads(body)) if body else {}
        req = urllib.request.Request(
            self.moto + "/",
            data=json.dumps(request).encode(),
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": f"{TARGET_PREFIX}.{op}",
                "Authorization": self.headers.get("Authorization", ""),
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, answer = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, answer = e.code, e.read()
        payload = to_cbor(json.loads(answer)) if answer.strip() else {}
        out = cbor2.dumps(payload, datetime_as_timestamp=True, timezone=datetime.timezone.utc)
        self.send_response(status)
        self.send_header("smithy-protocol", "rpc-v2-cbor")
        self.send_header("Content-Type", "application/cbor")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, fmt, *args):
        sys.stderr.write("cbor-shim: " + fmt % args + "\n")


def main():
    Shim.moto = sys.argv[2].rstrip("/")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Shim)
    server.serve_forever()


if __name__ == "__main__":
    main()
