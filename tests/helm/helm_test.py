#!/usr/bin/env python3
"""The Helm chart (deploy/helm/s3canary): `helm lint --strict`; `helm template` with the default
values and every file of tests/helm/values/, each output validated by kubernetes-validate
--strict (the Prometheus Operator kinds, which it has no schema for, are checked here) and held
to deploy/check.py's checks of the kustomize base (hardened securityContext, probes on /-/healthy
and /-/ready, resources, the config from the ConfigMap, --shard from the pod's name); the
rendered default config passes `s3canary check-config`; checksums roll the pods on a config
change; a typo in values is refused by the schema, naming the key; appVersion is Cargo.toml's
version; the PrometheusRule carries exactly alerts/s3canary.rules.yml; README's values table is
what deploy/helm/values_table.py prints.

usage: tests/helm/helm_test.py HELM S3CANARY_BINARY OUTPUT_DIR
"""
import pathlib
import re
import subprocess
import sys

import yaml

root = pathlib.Path(__file__).resolve().parents[2]
chart = root / "deploy/helm/s3canary"
values_dir = root / "tests/helm/values"
helm, binary, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3]) / "helm"
out.mkdir(parents=True, exist_ok=True)
kv = root / ".venv/bin/kubernetes-validate"
failures = []
CRDS = {"ServiceMonitor", "PrometheusRule"}


def check(ok, what):
    print(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def template(*args, release="canary"):
    return subprocess.run([helm, "template", release, str(chart), "--namespace", "s3canary", *args],
                          capture_output=True, text=True)


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


# Chart metadata and the one source of the rules.
meta = yaml.safe_load((chart / "Chart.yaml").read_text())
cargo = re.search(r'^version = "([^"]+)"', (root / "Cargo.toml").read_text(), re.M).group(1)
check(meta["appVersion"] == cargo, f"Chart.yaml appVersion ({meta['appVersion']}) is Cargo.toml's version ({cargo})")
check((chart / "files/s3canary.rules.yml").read_bytes() == (root / "alerts/s3canary.rules.yml").read_bytes(),
      "the chart's files/s3canary.rules.yml is alerts/s3canary.rules.yml (run deploy/helm/sync-rules.sh)")

# README's values table.
table = run([sys.executable, str(root / "deploy/helm/values_table.py")]).stdout
readme = (root / "README.md").read_text()
m = re.search(r"<!-- values-table:begin.*?-->\n(.*?)<!-- values-table:end -->", readme, re.S)
check(m is not None and m.group(1) == table,
      "README's values table is what deploy/helm/values_table.py prints (paste its output between the markers)")

# Every value of the schema is commented in values.yaml (a row of the table, or under one).
rows = [line.split("`")[1] for line in table.splitlines()[2:]]
schema = yaml.safe_load((chart / "values.schema.json").read_text())


def schema_keys(node, prefix=""):
    for k, sub in node.get("properties", {}).items():
        yield prefix + k
        if sub.get("additionalProperties") is False:
            yield from schema_keys(sub, prefix + k + ".")


def additional_false(node, path="(root)"):
    if node.get("type") == "object" and "properties" in node:
        check(node.get("additionalProperties") is False, f"values.schema.json: {path} has additionalProperties false")
        for k, sub in node["properties"].items():
            additional_false(sub, f"{path}.{k}" if path != "(root)" else k)


additional_false(schema)
for key in schema_keys(schema):
    documented = any(key == r or key.startswith(r + ".") for r in rows)
    check(documented or any(r.startswith(key + ".") for r in rows), f"values.yaml comments `{key}`")

# helm lint --strict, default values and every values file.
files = sorted(p for p in values_dir.glob("*.yaml") if p.name != "bad-key.yaml")
for f in [None, *files]:
    r = run([helm, "lint", "--strict", str(chart), *(["-f", str(f)] if f else [])])
    check(r.returncode == 0, f"helm lint --strict {f.name if f else '(default values)'} {r.stdout[-500:] if r.returncode else ''}")


def container_checks(name, pod, sharded):
    c = pod["containers"][0]
    sc = c["securityContext"]
    psc = pod["securityContext"]
    check(psc.get("runAsNonRoot") is True, f"{name}: the pod runs as non-root")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp RuntimeDefault")
    check(sc.get("readOnlyRootFilesystem") is True, f"{name}: the root filesystem is read-only")
    check(sc.get("allowPrivilegeEscalation") is False, f"{name}: no privilege escalation")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: all capabilities dropped")
    check("limits" in c.get("resources", {}) and "requests" in c["resources"], f"{name}: resources set")
    mount = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == "config")
    cfg = c["args"][c["args"].index("--config") + 1]
    check(cfg.startswith(mount + "/"), f"{name}: the config ({cfg}) comes from the ConfigMap mount ({mount})")
    env = {e["name"]: e for e in c.get("env", [])}
    if sharded:
        shard = c["args"][c["args"].index("--shard") + 1]
        check(env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
              f"{name}: POD_NAME is the pod's name")
        return shard
    check("--shard" not in c["args"], f"{name}: one process, no --shard")
    return None


def probes_checks(name, c, https, basic_auth):
    for probe, path in [("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")]:
        p = c[probe]
        if basic_auth:
            check(p.get("tcpSocket", {}).get("port") == "http",
                  f"{name}: {probe} checks the TCP port (every path needs credentials)")
        else:
            check(p.get("httpGet", {}).get("path") == path, f"{name}: {probe} on {path}")
            check(p["httpGet"].get("scheme") == ("HTTPS" if https else "HTTP"), f"{name}: {probe} over {'HTTPS' if https else 'HTTP'}")


def render(f):
    label = f.name if f else "default values"
    r = template(*(["-f", str(f)] if f else []))
    check(r.returncode == 0, f"helm template ({label}) {r.stderr.strip()}")
    if r.returncode:
        return None
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    plain = [d for d in docs if d["kind"] not in CRDS]
    dest = out / f"{f.stem if f else 'default'}.yaml"
    dest.write_text(yaml.safe_dump_all(plain, sort_keys=False))
    v = run([str(kv), "--strict", "--quiet", str(dest)])
    check(v.returncode == 0, f"kubernetes-validate --strict ({label}) {v.stdout.strip()} {v.stderr.strip()}")
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}, yaml.safe_load(f.read_text()) if f else {}


def kind(objs, k):
    return [o for (kk, _), o in objs.items() if kk == k]


def config_checks(label, objs, values):
    cms = kind(objs, "ConfigMap")
    if (values.get("config") or {}).get("existingConfigMap"):
        check(not cms, f"{label}: no ConfigMap rendered with config.existingConfigMap")
        return
    check(len(cms) == 1, f"{label}: one ConfigMap")
    toml = cms[0]["data"][(values.get("config") or {}).get("key", "s3canary.toml")]
    path = out / f"{label.replace(' ', '-')}.toml"
    web = kind(objs, "Secret")
    if web:
        # The web config as the pod sees it: web-config.yml, and a throwaway certificate and key
        # in the place of the kubernetes.io/tls Secret's, in a folder of their own.
        folder = (out / f"{label}-web").resolve()
        folder.mkdir(exist_ok=True)
        (folder / "web-config.yml").write_text(web[0]["stringData"]["web-config.yml"])
        r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=s3canary",
                 "-keyout", str(folder / "tls.key"), "-out", str(folder / "tls.crt")])
        check(r.returncode == 0, f"{label}: openssl made a test certificate" + (r.stderr[-200:] if r.returncode else ""))
        toml = re.sub(r'(?m)^(\s*web_config_file = )".*"$', lambda m: f'{m.group(1)}"{folder}/web-config.yml"', toml)
    path.write_text(toml)
    r = run([binary, "check-config", "--config", str(path)])
    check(r.returncode == 0, f"{label}: the rendered config passes `s3canary check-config` {r.stderr.strip()}")


rendered = {}
for f in [None, *files]:
    res = render(f)
    if res is None:
        continue
    objs, values = res
    label = f.name if f else "default values"
    rendered[label] = objs
    web = values.get("webConfig") or {}
    shards = values.get("shards", 1)
    workloads = kind(objs, "StatefulSet" if shards > 1 else "Deployment")
    check(len(workloads) == 1 and not kind(objs, "Deployment" if shards > 1 else "StatefulSet"),
          f"{label}: {'a StatefulSet' if shards > 1 else 'a Deployment'} and nothing else runs the pods")
    wl = workloads[0]
    pod = wl["spec"]["template"]["spec"]
    shard = container_checks(label, pod, shards > 1)
    probes_checks(label, pod["containers"][0], https=bool(web.get("tls", {}).get("enabled")),
                  basic_auth=bool(web.get("basicAuthUsers") or web.get("existingSecret")))
    config_checks(label, objs, values)
    ann = wl["spec"]["template"]["metadata"].get("annotations", {})
    if not (values.get("config") or {}).get("existingConfigMap"):
        check("checksum/config" in ann, f"{label}: checksum/config on the pods")
    if web.get("enabled"):
        check("checksum/web-config" in ann, f"{label}: checksum/web-config on the pods")
        secret = kind(objs, "Secret")[0]
        web_yml = yaml.safe_load(secret["stringData"]["web-config.yml"])
        toml = kind(objs, "ConfigMap")[0]["data"]["s3canary.toml"]
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        check(f'web_config_file = "{mounts["web-config"]}/web-config.yml"' in toml,
              f"{label}: server.web_config_file names the mounted web config")
        check(set(web_yml) == {"tls_server_config", "basic_auth_users"}, f"{label}: web-config.yml has TLS and basic auth")
        sources = pod["volumes"][[v["name"] for v in pod["volumes"]].index("web-config")]["projected"]["sources"]
        files_in = {i["path"] for s in sources for i in s["secret"].get("items", [])}
        check({web_yml["tls_server_config"]["cert_file"], web_yml["tls_server_config"]["key_file"]} <= files_in,
              f"{label}: the certificate and key web-config.yml names are mounted next to it")
    if shards > 1:
        name = wl["metadata"]["name"]
        check(shard == f"$(POD_NAME)/{wl['spec']['replicas']}", f"{label}: --shard ({shard}) counts the {wl['spec']['replicas']} replicas")
        headless = [s for s in kind(objs, "Service") if s["spec"].get("clusterIP") == "None"]
        check(len(headless) == 1 and wl["spec"]["serviceName"] == headless[0]["metadata"]["name"],
              f"{label}: the StatefulSet's serviceName is its headless Service")
        r = run([binary, "run", "--shard", f"{name}-{shards - 1}/{shards}", "--config", "/nonexistent/s3canary.toml"])
        check(r.returncode == 2 and "--shard" not in r.stderr,
              f"{label}: `run --shard {name}-{shards - 1}/{shards}` (the last pod's name) is accepted")
    svc_enabled = (values.get("service") or {}).get("enabled", True)
    services = [s for s in kind(objs, "Service") if s["spec"].get("clusterIP") != "None"]
    check(len(services) == (1 if svc_enabled else 0), f"{label}: {'a' if svc_enabled else 'no'} Service")
    labels = wl["spec"]["template"]["metadata"]["labels"]
    for s in kind(objs, "Service"):
        check(all(labels.get(k) == v for k, v in s["spec"]["selector"].items()), f"{label}: Service {s['metadata']['name']} selects the pods")
    for sm in kind(objs, "ServiceMonitor"):
        ports = {p["name"] for s in services for p in s["spec"]["ports"]}
        check(all(e["port"] in ports and e["path"] == "/metrics" for e in sm["spec"]["endpoints"]),
              f"{label}: the ServiceMonitor scrapes /metrics on a port of the Service")
        check(all(services[0]["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
              f"{label}: the ServiceMonitor selects the Service")
        if web.get("tls", {}).get("enabled"):
            check(all(e.get("scheme") == "https" for e in sm["spec"]["endpoints"]), f"{label}: the ServiceMonitor scrapes over https")
    for pr in kind(objs, "PrometheusRule"):
        alerts = yaml.safe_load((root / "alerts/s3canary.rules.yml").read_text())
        check(pr["spec"] == alerts, f"{label}: the PrometheusRule carries exactly alerts/s3canary.rules.yml")
    for pdb in kind(objs, "PodDisruptionBudget"):
        check(pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), f"{label}: the PodDisruptionBudget selects the pods")
    for np in kind(objs, "NetworkPolicy"):
        check(np["spec"]["podSelector"]["matchLabels"].items() <= labels.items(), f"{label}: the NetworkPolicy selects the pods")
    sa = pod["serviceAccountName"]
    if (values.get("serviceAccount") or {}).get("create", True):
        check(("ServiceAccount", sa) in objs, f"{label}: the pods run as the ServiceAccount the chart creates")
    else:
        check(not kind(objs, "ServiceAccount"), f"{label}: no ServiceAccount created, {sa} used")

default = rendered.get("default values", {})
check(not any(k in CRDS for k, _ in default), "default values: no ServiceMonitor or PrometheusRule (off by default)")
check(any(k == "ServiceAccount" for k, _ in default) and any(k == "PodDisruptionBudget" for k, _ in default),
      "default values: a ServiceAccount and a PodDisruptionBudget")
sharded = rendered.get("sharded.yaml", {})
check({"ServiceMonitor", "PrometheusRule", "NetworkPolicy"} <= {k for k, _ in sharded},
      "sharded.yaml: ServiceMonitor, PrometheusRule and NetworkPolicy rendered when enabled")
sa = [o for (k, _), o in sharded.items() if k == "ServiceAccount"]
check(bool(sa) and "eks.amazonaws.com/role-arn" in sa[0]["metadata"].get("annotations", {}),
      "sharded.yaml: the ServiceAccount carries the IRSA annotation")


# A config change rolls the pods; the same config does not.
def checksum(*args):
    r = template(*args)
    dep = next(d for d in yaml.safe_load_all(r.stdout) if d and d["kind"] == "Deployment")
    return dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


a, b = checksum(), checksum("--set", "config.settings.defaults.interval=1m")
check(a == checksum() and a != b, "checksum/config changes with the config, and only then")
check(b"object_size = 4096\n" in (out / "sharded.yaml.toml").read_bytes() if (out / "sharded.yaml.toml").exists() else False,
      "integers are written as TOML integers (object_size = 4096, not 4096.0)")

# A typo in values is refused by the schema, naming the key.
r = template("-f", str(values_dir / "bad-key.yaml"))
check(r.returncode != 0 and "enabeld" in r.stderr, "a typo in values is refused, naming the key: " + " ".join(r.stderr.split())[:200])
r = template("--set", "shards=0")
check(r.returncode != 0 and "shards" in r.stderr, "shards: 0 is refused")

print(f"helm chart checks: {len(failures)} failed")
sys.exit(1 if failures else 0)
