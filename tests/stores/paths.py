"""What a store does with the paths applications use, asked directly (for tests/stores/
stores_test.py and the compatibility matrix): multipart uploads, and uploads with a full-object
checksum in both forms current SDKs send (a header, or an aws-chunked body with a trailing
checksum), read back with checksum mode on, and a wrong checksum.

The requests are signed with botocore's SigV4 and sent as they are, because boto3 itself sends
trailers only over TLS and CRC32C/CRC64NVME only with awscrt installed; the checksums are
computed here (zlib, hashlib, and table CRCs checked against their standard check values).
"""
import base64
import hashlib
import urllib.error
import urllib.request
import zlib

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHMS = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"]
PART = 5 * 1024 * 1024


def _table(poly, width):
    mask = (1 << width) - 1
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c & mask)
    return table, mask


_CRC32C = _table(0x82F63B78, 32)
_CRC64NVME = _table(0x9A6C9329AC4BC9B5, 64)


def _crc(spec, data):
    table, mask = spec
    c = mask
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ mask


assert _crc(_CRC32C, b"123456789") == 0xE3069283
assert _crc(_CRC64NVME, b"123456789") == 0xAE8B14860A799888


def checksum(algorithm, data):
    """The base64 checksum S3 expects in `x-amz-checksum-<algorithm>`."""
    if algorithm == "crc32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm == "crc32c":
        raw = _crc(_CRC32C, data).to_bytes(4, "big")
    elif algorithm == "crc64nvme":
        raw = _crc(_CRC64NVME, data).to_bytes(8, "big")
    else:
        raw = hashlib.new(algorithm, data).digest()
    return base64.b64encode(raw).decode()


class _Signer(S3SigV4Auth):
    """SigV4 for S3 whose payload hash may be a literal (STREAMING-UNSIGNED-PAYLOAD-TRAILER)."""

    def __init__(self, credentials, payload=None):
        super().__init__(credentials, "s3", "us-east-1")
        self._literal = payload

    def payload(self, request):
        return self._literal or super().payload(request)


class Direct:
    """Signed requests to bucket `bucket` of the store at `url`, with `keys`."""

    def __init__(self, url, bucket, keys):
        self.url, self.bucket = url, bucket
        self.credentials = Credentials(*keys)

    def send(self, method, key, body=b"", headers=None, payload=None, query=""):
        """(status, headers, body) of one signed request; errors are answers too."""
        url = f"{self.url}/{self.bucket}/{key}" + (f"?{query}" if query else "")
        # Without a type urllib sends a body as a form, which moto's server then parses away.
        headers = {"Content-Type": "application/octet-stream", **(headers or {})}
        req = AWSRequest(method=method, url=url, data=body, headers=headers)
        _Signer(self.credentials, payload).add_auth(req)
        prepared = req.prepare()
        raw = urllib.request.Request(prepared.url, data=body if method in ("PUT", "POST") else None,
                                     method=method, headers=dict(prepared.headers.items()))
        try:
            with urllib.request.urlopen(raw, timeout=30) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def put(self, key, body, algorithm, form, value=None):
        """PutObject of `body` with its `algorithm` checksum (or `value`) sent in `form`."""
        value = value or checksum(algorithm, body)
        name = f"x-amz-checksum-{algorithm}"
        # As the SDKs send it, beside the checksum in either form.
        sdk = {"x-amz-sdk-checksum-algorithm": algorithm.upper()}
        if form == "header":
            return self.send("PUT", key, body, {name: value, **sdk})
        chunked = f"{len(body):x}\r\n".encode() + body + f"\r\n0\r\n{name}:{value}\r\n\r\n".encode()
        return self.send("PUT", key, chunked, {
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(body)),
            "x-amz-trailer": name,
            **sdk,
        }, payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER")

    def checksums(self):
        """Per algorithm and form: 'ok', 'refused <status>', 'not kept' or 'wrong checksum
        returned'; and whether a wrong checksum was refused."""
        body = bytes(range(256)) * 4
        found = {}
        for a in ALGORITHMS:
            for form in ("header", "trailer"):
                key = f"direct/checksum-{a}-{form}"
                status, _, _ = self.put(key, body, a, form)
                if status != 200:
                    found[f"{a} {form}"] = f"refused {status}"
                    continue
                status, headers, got = self.send("GET", key, headers={"x-amz-checksum-mode": "ENABLED"})
                kept = headers.get(f"x-amz-checksum-{a}")
                if status != 200 or got != body:
                    found[f"{a} {form}"] = f"read back {status}, {len(got)} bytes"
                elif kept is None:
                    found[f"{a} {form}"] = "not kept"
                elif kept != checksum(a, body):
                    found[f"{a} {form}"] = "wrong checksum returned"
                else:
                    found[f"{a} {form}"] = "ok"
                self.send("DELETE", key)
        wrong = checksum("crc32", b"other bytes")
        status, _, _ = self.put("direct/checksum-wrong", body, "crc32", "header", value=wrong)
        self.send("DELETE", "direct/checksum-wrong")
        return {"checksums": found, "wrong_checksum_refused": status in (400, 403)}

    def multipart(self, s3):
        """A two-part upload with boto3 (no default checksums): completes, the ETag's form,
        the bytes across the boundary, and whether the store lists uploads."""
        key = "direct/multipart"
        up = s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        first, last = b"a" * PART, b"b" * 1024
        parts = []
        for n, body in ((1, first), (2, last)):
            etag = s3.upload_part(Bucket=self.bucket, Key=key, UploadId=up, PartNumber=n, Body=body)["ETag"]
            parts.append({"PartNumber": n, "ETag": etag})
        try:
            listed = s3.list_multipart_uploads(Bucket=self.bucket, Prefix="direct/")
            lists = any(u["UploadId"] == up for u in listed.get("Uploads", []))
        except Exception as e:  # noqa: BLE001 (a store without it answers 501)
            lists = False
            print(f"ListMultipartUploads: {e}")
        etag = s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=up,
                                            MultipartUpload={"Parts": parts}).get("ETag", "")
        around = s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={PART - 16}-{PART + 15}")
        boundary = around["Body"].read() == b"a" * 16 + b"b" * 16
        size = int(around.get("ContentRange", "/0").rsplit("/", 1)[1])
        s3.delete_object(Bucket=self.bucket, Key=key)
        return {
            "multipart_completes": boundary and size == PART + 1024,
            "multipart_etag_has_parts": etag.strip('"').endswith("-2"),
            "multipart_etag": etag,
            "lists_uploads": lists,
        }


def expected_checksum_reasons(d):
    """The reasons the checksum probe must find over a full rotation, from the direct answers."""
    want = set()
    for outcome in d["checksums"].values():
        if outcome.startswith("refused"):
            want.add("checksum_unsupported")
        elif outcome == "not kept":
            want.add("checksum_ignored")
        elif outcome == "wrong checksum returned":
            want.add("checksum_mismatch")
        elif outcome != "ok":
            want.add("content_mismatch")
    if not d["wrong_checksum_refused"]:
        want.add("checksum_ignored")
    return want


def describe(d):
    """What the store does, in the matrix's words."""
    out = []
    for form, words in (("header", "a checksum header"), ("trailer", "aws-chunked trailers")):
        refused = [a for a in ALGORITHMS if d["checksums"][f"{a} {form}"].startswith("refused")]
        if len(refused) == len(ALGORITHMS):
            out.append(f"refuses {words}")
        elif refused:
            out.append(f"refuses {', '.join(refused)} in {words}")
    if any(v.startswith("read back") for k, v in d["checksums"].items() if k.endswith("trailer")):
        out.append("keeps aws-chunked uploads undecoded (other bytes than sent)")
    if any(v == "not kept" for v in d["checksums"].values()):
        out.append("keeps no checksum")
    if not d["wrong_checksum_refused"]:
        out.append("accepts a wrong checksum")
    if not d["multipart_etag"].strip('"'):
        out.append("answers CompleteMultipartUpload without an ETag")
    elif not d["multipart_etag_has_parts"]:
        out.append("gives a completed multipart upload a plain ETag")
    if not d["lists_uploads"]:
        out.append("does not list multipart uploads")
    return out
