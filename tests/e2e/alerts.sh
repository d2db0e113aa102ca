#!/usr/bin/env bash
# Helpers are called through wait_for and trap, which shellcheck cannot follow.
# shellcheck disable=SC2317
# End to end: a real Prometheus scrapes `s3canary demo` and evaluates a copy of the alert rules
# with short windows; a real Alertmanager receives the alerts. A fault is switched on in the
# embedded S3 server: the expected alert must reach Alertmanager's API, and leave it once the
# fault is removed. Then every dashboard query must return data from this Prometheus.
# usage: tests/e2e/alerts.sh OUTPUT_DIR
set -euo pipefail
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
out=${1:-test-output}/e2e
rm -rf "$out"
mkdir -p "$out"
bin=$(s3canary_bin)
am_bin=$(command -v prometheus-alertmanager || command -v alertmanager)
demo_port=$(free_port); prom_port=$(free_port); am_port=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# The rules under test, with windows and `for` shortened so the test takes minutes, not hours.
sed -E -e 's/\[(5|10|15)m\]/[20s]/g' -e 's/for: [0-9]+m/for: 5s/' alerts/s3canary.rules.yml >"$out/rules.yml"
promtool check rules "$out/rules.yml" >/dev/null

cat >"$out/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{targets: ["127.0.0.1:$am_port"]}]
scrape_configs:
  - job_name: s3canary
    static_configs: [{targets: ["127.0.0.1:$demo_port"]}]
YAML
cat >"$out/alertmanager.yml" <<YAML
route:
  receiver: log
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: log
YAML

"$bin" demo --listen "127.0.0.1:$demo_port" >"$out/demo.log" 2>&1 & pids+=($!)
"$am_bin" --config.file="$out/alertmanager.yml" --storage.path="$out/am-data" \
    --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= >"$out/alertmanager.log" 2>&1 & pids+=($!)
prometheus --config.file="$out/prometheus.yml" --storage.tsdb.path="$out/prom-data" \
    --web.listen-address="127.0.0.1:$prom_port" --web.enable-lifecycle \
    --rules.alert.resend-delay=1s >"$out/prometheus.log" 2>&1 & pids+=($!)
started=$(date +%s)

scraped() {
    curl -fs "http://127.0.0.1:$prom_port/api/v1/query?query=sum(s3canary_probe_runs_total)" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; sys.exit(0 if r and float(r[0]["value"][1]) > 0 else 1)'
}
prom_true() { # prom_true EXPR: the instant query returns a sample
    curl -fs "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" |
        python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["data"]["result"] else 1)'
}
am_has() { # am_has ALERTNAME TARGET: the alert is active in Alertmanager
    curl -fs "http://127.0.0.1:$am_port/api/v2/alerts?active=true" |
        python3 -c 'import json,sys; a=json.load(sys.stdin); sys.exit(0 if any(x["labels"].get("alertname")==sys.argv[1] and x["labels"].get("target")==sys.argv[2] for x in a) else 1)' "$1" "$2"
}
am_lacks() { ! am_has "$@"; }
fault() { curl -fs -X POST "http://127.0.0.1:$demo_port/-/demo/faults/$1" >/dev/null; }

status=0
wait_for 60 "Prometheus scrapes the daemon" scraped || status=1
# Stale reads first, so the consistency panels have data; then an outage.
fault stale
wait_for 60 "Prometheus sees staleness observed by the daemon" prom_true 'sum(increase(s3canary_staleness_seconds_count[20s])) > 0' || status=1
fault outage
wait_for 60 "S3RequestsFailing (two failed cycles in a row) reaches Alertmanager during an outage" am_has S3RequestsFailing source || status=1
wait_for 150 "S3WriteFailureRateHigh reaches Alertmanager during an outage" am_has S3WriteFailureRateHigh source || status=1
fault none
wait_for 60 "S3RequestsFailing resolves after the fault is removed" am_lacks S3RequestsFailing source || status=1
wait_for 180 "S3WriteFailureRateHigh resolves after the fault is removed" am_lacks S3WriteFailureRateHigh source || status=1
curl -fs "http://127.0.0.1:$am_port/api/v2/alerts" >"$out/alertmanager-alerts.json" || true

history=$(( $(date +%s) - started + 10 ))
python3 tests/e2e/dashboard_queries.py "http://127.0.0.1:$prom_port" dashboards/s3canary.json "$history" || status=1
if [ $status -ne 0 ]; then
    echo "--- demo log (tail)"; tail -20 "$out/demo.log"
    echo "--- prometheus log (tail)"; tail -20 "$out/prometheus.log"
fi
exit $status
