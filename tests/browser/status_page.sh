#!/usr/bin/env bash
# cleanup runs from the EXIT trap, which shellcheck cannot follow.
# shellcheck disable=SC2317
# Loads the status page in a real headless Chromium and checks what a person would see at 3 AM:
# a failing target (every request 503) with its state written out, since when it fails, its
# reason and S3 request IDs, and its last 15 minutes as a strip of red runs; a healthy target
# with green runs and a latency sparkline; and a target whose first cycle has not finished
# (every request hangs, interval 1h) reading "waiting for first cycle", never "OK".
# Writes the rendered DOM and a screenshot to $1 (the output folder).
# usage: tests/browser/status_page.sh OUTPUT_DIR
set -euo pipefail
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
out=${1:-test-output}
mkdir -p "$out"
bin=$(s3canary_bin)
fault_s3=${FAULT_S3_BIN:-target/debug/examples/fault-s3}
chromium=$(command -v chromium || command -v chromium-browser)
s3_port=$(free_port); control_port=$(free_port); port=$(free_port)
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

"$fault_s3" "127.0.0.1:$s3_port" "127.0.0.1:$control_port" source quiet later slow >"$out/status-page-s3.log" 2>&1 & pids+=($!)
wait_for 30 "the embedded S3 server is up" grep -q ready "$out/status-page-s3.log"
fault() { curl -fs -X POST "http://127.0.0.1:$control_port/-/demo/faults/$1?bucket=$2" >/dev/null; }
fault outage source
fault unreachable later
fault slow slow
target() { # target NAME INTERVAL TIMEOUT
    printf '\n[[target]]\nname = "%s"\nbucket = "%s"\nregion = "us-east-1"\nendpoint = "http://127.0.0.1:%s"\npath_style = true\ninterval = "%s"\ntimeout = "%s"\n' \
        "$1" "$1" "$s3_port" "$2" "$3"
}
{
    printf '[server]\nlisten = "127.0.0.1:%s"\n\n[defaults]\nconfirm_interval = "0s"\n' "$port"
    target source 2s 1s
    target quiet 2s 1s
    target later 1h 50m
    target slow 3s 2900ms
    printf 'probes = ["put"]\n'
} >"$dir/s3canary.toml"
AWS_ACCESS_KEY_ID=s3canary-embedded AWS_SECRET_ACCESS_KEY=s3canary-embedded-secret AWS_EC2_METADATA_DISABLED=true \
    "$bin" run --config "$dir/s3canary.toml" >"$out/status-page-daemon.log" 2>&1 & pids+=($!)

# Ready when the API reports a failed put with a request ID on "source", at least 3 runs of
# "quiet" and a slow request on "slow" (every request 300-700 ms); the request IDs are checked
# on the page.
ids() { # the request IDs of source's latest failure and slow's latest slow request, once there
    curl -fs "http://127.0.0.1:$port/api/v1/status" 2>/dev/null | python3 -c '
import json, sys
s = {t["name"]: t for t in json.load(sys.stdin)["targets"]}
f = s["source"]["recent_failures"]
runs = s["quiet"]["probes"][0]["runs_total"]
slow = s["slow"].get("slow_attempt") or {}
if f and f[0].get("request_id") and runs >= 3 and slow.get("request_id"):
    print(f[0]["request_id"], slow["request_id"])
' 2>/dev/null || true
}
rid=""
slow_rid=""
for _ in $(seq 1 300); do
    read -r rid slow_rid <<<"$(ids)" || true
    [ -n "$rid" ] && break
    sleep 0.1
done
if [ -z "$rid" ]; then
    echo "no failure with a request ID appeared in /api/v1/status"
    cat "$out/status-page-daemon.log"
    exit 1
fi

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --user-data-dir="$dir/chromium")
timeout 90 "$chromium" "${flags[@]}" --dump-dom "http://127.0.0.1:$port/" >"$out/status-page.html" 2>"$out/chromium.log"
read -r rid_after slow_rid_after <<<"$(ids)" || true
timeout 90 "$chromium" "${flags[@]}" --window-size=1280,1600 --screenshot="$out/status-page.png" \
    "http://127.0.0.1:$port/" >>"$out/chromium.log" 2>&1

fail=0
# The section of one target in the rendered DOM.
section() { python3 - "$out/status-page.html" "$1" <<'PY'
import re, sys
html = open(sys.argv[1]).read()
m = re.search(r'<section class="target" id="target-%s">(.*?)</section>' % re.escape(sys.argv[2]), html, re.S)
print(m.group(1) if m else "")
PY
}
check() { # check DESCRIPTION TARGET PATTERN (an extended regex on the target's section)
    local text
    text=$(section "$2")
    if grep -Eq -- "$3" <<<"$text"; then
        echo "ok: $1"
    else
        echo "MISSING: $1 (pattern $3 in target $2)"
        fail=1
    fi
}
check "the failing target's state is written out, with since when" source 'FAILING since [0-9-]+T[0-9:]+Z \([0-9a-z ]+ ago\)</span> source'
check "the reason is shown" source 'FAIL server_error'
check "the S3 error code is shown" source 'ServiceUnavailable'
# The server numbers its answers, so the ID the page shows is one of those between the API's
# reads before and after Chromium rendered it (new failures may come in meanwhile).
shown() { # shown DESCRIPTION TARGET PATTERN-WITH-ONE-GROUP FIRST LAST
    local id
    id=$(section "$2" | grep -Eo -- "$3" | head -1 | grep -Eo '[0-9A-F]{16}' || true)
    if [ -n "$id" ] && [ $((16#$4)) -le $((16#$id)) ] && [ $((16#$id)) -le $((16#$5)) ]; then
        echo "ok: $1 ($id)"
    else
        echo "MISSING: $1 (shown ${id:-none}, want $4..$5)"
        fail=1
    fi
}
shown "the x-amz-request-id of a failure is shown" source 'x-amz-request-id <code[^>]*>[0-9A-F]{16}' "$rid" "${rid_after:-$rid}"
check "the x-amz-id-2 label is shown" source 'x-amz-id-2'
check "the failing put's strip has red runs and counts them" source 'aria-label="[0-9]+ runs in 15 min: 0 passed, 0 slow, [1-9][0-9]* failed \(slow: over 500ms\)"'
check "the failed runs are drawn" source 'class="failed" fill="#c62828" d="M[0-9.]+ 0h2'
check "the healthy target reads OK" quiet 'class="state good">OK</span> quiet'
check "the healthy target's strip has green runs" quiet 'class="passed" fill="#2e7d32" d="M[0-9.]+ 0h2'
check "a latency sparkline is drawn" quiet '<polyline fill="none" stroke="#1565c0" stroke-width="1" points="[0-9.]+,[0-9.]+ [0-9.]+,[0-9.]+'
check "a target without a finished cycle is waiting, not OK" later 'WAITING for first cycle</span> later'
check "its probes say so too" later 'waiting for first cycle</td>'
check "the latest slow request is drawn as a waterfall of its phases" slow '<svg class="waterfall"[^>]*aria-label="phases of the attempt, [0-9.]+ ms in all: [^"]*first_byte [0-9.]+ ms'
check "its first byte is a bar" slow 'class="phase-first_byte" x="[0-9.]+" y="[0-9.]+" width="[0-9.]+"'
shown "with its x-amz-request-id" slow 'x-amz-request-id <code[^>]*>[0-9A-F]{16}' "$slow_rid" "${slow_rid_after:-$slow_rid}"
if grep -q '>OK<' <<<"$(section later)"; then
    echo "MISSING: the waiting target must not read OK"
    fail=1
fi
# At 1280 px every table is whole: no column cut off, nothing scrolled sideways.
if fit=$(python3 "$(dirname "$0")/fit.py" "http://127.0.0.1:$port" "$chromium" 1280 "${flags[@]}" 2>>"$out/chromium.log"); then
    echo "ok: the page fits 1280 px without cutting a column ($fit)"
else
    echo "MISSING: the page does not fit 1280 px ($fit)"
    fail=1
fi
size=$(stat -c %s "$out/status-page.png" 2>/dev/null || echo 0)
if [ "$size" -lt 10000 ]; then
    echo "MISSING: screenshot $out/status-page.png ($size bytes)"
    fail=1
else
    echo "ok: screenshot $out/status-page.png ($size bytes)"
fi
exit $fail
