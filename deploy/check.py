#!/usr/bin/env python3
"""Consistency checks of deploy/ that no schema validator does: kustomizations name files that
exist, the ServiceMonitor scrapes the Service's port, the Deployment runs locked down with the
right probes, the sharded overlay's StatefulSet runs the same pod with a --shard that matches
its replicas, the IAM policy is what `s3canary iam-policy` prints, the PrometheusRule is
generated from alerts/, and the CloudWatch alarms use the metric names the daemon publishes.

usage: deploy/check.py S3CANARY_BINARY
"""
import json
import pathlib
import re
import subprocess
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
deploy = root / "deploy"
binary = sys.argv[1]
failures = []


def check(ok, what):
    print(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def load(path):
    return list(yaml.safe_load_all(path.read_text()))


for k in deploy.rglob("kustomization.yaml"):
    doc = load(k)[0]
    names = list(doc.get("resources", []))
    names += [p["path"] for p in doc.get("patches", []) if "path" in p]
    for g in doc.get("configMapGenerator", []):
        names += [f.split("=")[-1] for f in g.get("files", [])]
    for n in names:
        check((k.parent / n).exists(), f"{k.relative_to(root)} names {n}, which exists")

svc = load(deploy / "base/service.yaml")[0]
sm = load(deploy / "base/servicemonitor.yaml")[0]
ports = {p["name"] for p in svc["spec"]["ports"]}
check(all(e["port"] in ports for e in sm["spec"]["endpoints"]), "the ServiceMonitor scrapes a port of the Service")
check(all(e.get("path") == "/metrics" for e in sm["spec"]["endpoints"]), "the ServiceMonitor scrapes /metrics")

dep = load(deploy / "base/deployment.yaml")[0]
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
sc = c["securityContext"]
check(pod["securityContext"].get("runAsNonRoot") is True, "the pod runs as non-root")
check(sc.get("readOnlyRootFilesystem") is True, "the root filesystem is read-only")
check(sc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
check(sc.get("capabilities", {}).get("drop") == ["ALL"], "all capabilities dropped")
check(c["livenessProbe"]["httpGet"]["path"] == "/-/healthy", "liveness probe on /-/healthy")
check(c["readinessProbe"]["httpGet"]["path"] == "/-/ready", "readiness probe on /-/ready")
check("resources" in c and "limits" in c["resources"], "resources set")
mount = c["volumeMounts"][0]["mountPath"]
check(f"{mount}/s3canary.toml" in c["args"], "the config comes from the ConfigMap mount")

# The sharded overlay: the same pod as the Deployment, N in --shard equal to the replicas, and
# the index from the pod's name.
sts = load(deploy / "overlays/sharded/statefulset.yaml")[0]
spod = sts["spec"]["template"]["spec"]
sc_ = spod["containers"][0]
shard_arg = sc_["args"][sc_["args"].index("--shard") + 1]
check(shard_arg == f"$(POD_NAME)/{sts['spec']['replicas']}",
      f"the StatefulSet's --shard ({shard_arg}) counts its {sts['spec']['replicas']} replicas")
env = {e["name"]: e for e in sc_["env"]}
check(env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
      "POD_NAME is the pod's name (s3canary-<ordinal>)")
for key in ["securityContext", "livenessProbe", "readinessProbe", "volumeMounts", "ports", "resources"]:
    check(sc_.get(key) == c.get(key), f"the StatefulSet's container has the Deployment's {key}")
for key in ["securityContext", "serviceAccountName", "terminationGracePeriodSeconds", "volumes"]:
    check(spod.get(key) == pod.get(key), f"the StatefulSet's pod has the Deployment's {key}")
check([a for a in sc_["args"] if a not in ("--shard", shard_arg)] == c["args"],
      "the StatefulSet runs the Deployment's command, plus --shard")
r = subprocess.run([binary, "run", "--shard", "s3canary-2/3", "--config", "/nonexistent/s3canary.toml"],
                   capture_output=True, text=True, timeout=30)
check(r.returncode == 2 and "--shard" not in r.stderr,
      f"`run --shard s3canary-2/3` is accepted (it fails on the missing config: {r.stderr.strip()[:80]})")

sa = load(deploy / "base/serviceaccount.yaml")[0]
check("eks.amazonaws.com/role-arn" in sa["metadata"].get("annotations", {}), "the ServiceAccount is annotated for IRSA")

for cfg in [deploy / "base/s3canary.toml", deploy / "overlays/production/s3canary.toml"]:
    r = subprocess.run([binary, "check-config", "--config", str(cfg)], capture_output=True, text=True)
    check(r.returncode == 0, f"{cfg.relative_to(root)} passes check-config {r.stderr.strip()}")

r = subprocess.run([binary, "iam-policy", "--config", str(root / "config/s3canary.example.toml")], capture_output=True, text=True)
check(json.loads(r.stdout) == json.loads((deploy / "iam/policy.json").read_text()),
      "deploy/iam/policy.json is what `s3canary iam-policy` prints for the example config")

gen = subprocess.run([str(deploy / "gen-prometheusrule.sh")], capture_output=True, text=True, check=True).stdout
check(gen == (deploy / "base/prometheusrule.yaml").read_text(),
      "deploy/base/prometheusrule.yaml is generated from alerts/s3canary.rules.yml (run deploy/gen-prometheusrule.sh)")
rule = load(deploy / "base/prometheusrule.yaml")[0]
alerts = load(root / "alerts/s3canary.rules.yml")[0]
check(rule["spec"] == alerts, "the PrometheusRule carries exactly the alert rules")

# CloudFormation tags (!Ref, !Sub) need a loader that accepts them.
class CfnLoader(yaml.SafeLoader):
    pass
CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
cfn = yaml.load((deploy / "cloudwatch/alarms.yaml").read_text(), Loader=CfnLoader)
published = re.compile(
    r"^S3Consistency_((Read_After_Write|List_After_Write|Update_Consistency|Put|Delete_Consistency|Conditional_Write)_(SuccessRate|Latency)|Replication_(Lag|Pending))$"
)
units = {"SuccessRate": "Percent", "Latency": "Milliseconds", "Lag": "Seconds", "Pending": "Count"}
for name, res in cfn["Resources"].items():
    p = res["Properties"]
    m = p["MetricName"]
    check(bool(published.match(m)), f"alarm {name} uses a published metric ({m})")
    check(p["Unit"] == units[m.rsplit("_", 1)[1]], f"alarm {name} uses the published unit ({p['Unit']})")
    dims = [d["Name"] for d in p["Dimensions"]]
    want = ["SourceBucket", "DestinationBucket"] if "Replication" in m else ["BucketName", "Region"]
    check(dims == want, f"alarm {name} uses the published dimensions {want}")

docker = (root / "Dockerfile").read_text()
froms = re.findall(r"^FROM (\S+)", docker, re.M)
check(len(froms) >= 2, "the Dockerfile is multi-stage")
check(all(":" in f and not f.endswith(":latest") for f in froms), "base images are pinned to a tag, never latest")
check(re.search(r"^USER 65532", docker, re.M) is not None, "the runtime image runs as a non-root user")
check("distroless" in froms[-1], "the runtime image is distroless (no shell)")

print(f"deploy checks: {len(failures)} failed")
sys.exit(1 if failures else 0)
