#!/usr/bin/env bash
# Helpers are called through wait_for and trap, which shellcheck cannot follow.
# shellcheck disable=SC2317
# server.web_config_file end to end: the daemon serves every path over TLS with basic auth
# (exporter-toolkit format, bcrypt hash); curl without credentials and with a wrong password
# gets 401, with the right one 200, plain HTTP gets nothing; a real Prometheus scrapes it over
# TLS with basic auth (up == 1).
# usage: tests/e2e/web_config.sh OUTPUT_DIR   (needs openssl, curl, prometheus, .venv with bcrypt)
set -euo pipefail
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
out=${1:-test-output}/web-config
rm -rf "$out"
mkdir -p "$out"
bin=$(s3canary_bin)
port=$(free_port); prom_port=$(free_port); dead_port=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj "/CN=s3canary-test" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$out/server.key" -out "$out/server.crt" 2>"$out/openssl.log"
hash=$(.venv/bin/python -c 'import bcrypt; print(bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=10)).decode())')
cat >"$out/web.yml" <<YAML
tls_server_config:
  cert_file: server.crt
  key_file: server.key
basic_auth_users:
  prometheus: '$hash'
YAML
# One target on a closed port: this test is about the HTTP side only.
cat >"$out/s3canary.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
web_config_file = "web.yml"

[[target]]
name = "closed"
bucket = "closed"
region = "us-east-1"
endpoint = "http://127.0.0.1:$dead_port"
path_style = true
TOML
"$bin" check-config --config "$out/s3canary.toml"
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
    "$bin" run --config "$out/s3canary.toml" >"$out/daemon.log" 2>&1 & pids+=($!)

url="https://127.0.0.1:$port/metrics"
code() { curl -s -o /dev/null -w '%{http_code}' --cacert "$out/server.crt" "$@" "$url" || true; }
up() { [ "$(code -u prometheus:s3cret-pass)" = 200 ]; }
status=0
wait_for 30 "the daemon answers over TLS" up || status=1
check() { # check DESCRIPTION WANT GOT
    if [ "$2" = "$3" ]; then echo "ok: $1 ($3)"; else echo "FAILED: $1: want $2, got $3"; status=1; fi
}
check "no credentials" 401 "$(code)"
check "a wrong password" 401 "$(code -u prometheus:wrong)"
check "an unknown user" 401 "$(code -u nobody:s3cret-pass)"
check "the right password" 200 "$(code -u prometheus:s3cret-pass)"
check "the status API needs credentials too" 401 \
    "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$out/server.crt" "https://127.0.0.1:$port/api/v1/status" || true)"
plain=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/metrics" || true)
check "plain HTTP gets no answer" 000 "$plain"
# To a file first: `grep -q` stops reading at the first match, and under pipefail curl's
# broken pipe would fail the check.
curl -fs --cacert "$out/server.crt" -u prometheus:s3cret-pass "$url" >"$out/metrics.txt" || true
if grep -q '^s3canary_build_info' "$out/metrics.txt"; then
    echo "ok: the metrics come back"
else
    echo "FAILED: no s3canary_build_info in the authenticated scrape"; status=1
fi

cat >"$out/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: s3canary
    scheme: https
    tls_config:
      ca_file: server.crt
    basic_auth:
      username: prometheus
      password: s3cret-pass
    static_configs: [{targets: ["127.0.0.1:$port"]}]
YAML
prometheus --config.file="$out/prometheus.yml" --storage.tsdb.path="$out/prom-data" \
    --web.listen-address="127.0.0.1:$prom_port" >"$out/prometheus.log" 2>&1 & pids+=($!)
scraped() {
    curl -fs "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode 'query=up{job="s3canary"} == 1' |
        python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["data"]["result"] else 1)'
}
wait_for 60 "Prometheus scrapes over TLS with basic auth (up == 1)" scraped || status=1
if [ $status -ne 0 ]; then
    echo "--- daemon log (tail)"; tail -20 "$out/daemon.log"
    echo "--- prometheus log (tail)"; tail -20 "$out/prometheus.log"
fi
exit $status
