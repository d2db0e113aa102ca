#!/usr/bin/env bash
# Loads the status page in a real headless Chromium against a daemon whose S3 is failing
# (demo --faults outage) and checks what a person would see: the failing target, its reason
# and the S3 request IDs. Writes the rendered DOM and a screenshot to $1 (the output folder).
set -euo pipefail
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
out=${1:-test-output}
mkdir -p "$out"
bin=$(s3canary_bin)
chromium=$(command -v chromium || command -v chromium-browser)
port=$(free_port)
"$bin" demo --listen "127.0.0.1:$port" --faults outage >"$out/status-page-demo.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT

# Ready when the API reports a failed put with a request ID on the "source" target.
rid=""
for _ in $(seq 1 300); do
    rid=$(curl -fs "http://127.0.0.1:$port/api/v1/status" 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
t = [t for t in s["targets"] if t["name"] == "source"][0]
f = t["recent_failures"]
print(f[0]["request_id"] if f and f[0].get("request_id") else "")
' 2>/dev/null || true)
    [ -n "$rid" ] && break
    sleep 0.1
done
if [ -z "$rid" ]; then
    echo "no failure with a request ID appeared in /api/v1/status"
    cat "$out/status-page-demo.log"
    exit 1
fi

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --user-data-dir="$(mktemp -d)")
timeout 90 "$chromium" "${flags[@]}" --dump-dom "http://127.0.0.1:$port/" >"$out/status-page.html" 2>"$out/chromium.log"
timeout 90 "$chromium" "${flags[@]}" --window-size=1000,1400 --screenshot="$out/status-page.png" \
    "http://127.0.0.1:$port/" >>"$out/chromium.log" 2>&1

fail=0
check() { # check DESCRIPTION PATTERN
    if grep -q -- "$2" "$out/status-page.html"; then
        echo "ok: $1"
    else
        echo "MISSING: $1 (pattern $2)"
        fail=1
    fi
}
check "the failing target is named" 'id="target-source"'
check "its state is written out, not only coloured" 'FAILING</span> source'
check "the reason is shown" 'FAIL server_error'
check "the S3 error code is shown" 'ServiceUnavailable'
check "the x-amz-request-id of a failure is shown" "$rid"
check "the x-amz-id-2 label is shown" 'x-amz-id-2'
size=$(stat -c %s "$out/status-page.png" 2>/dev/null || echo 0)
if [ "$size" -lt 10000 ]; then
    echo "MISSING: screenshot $out/status-page.png ($size bytes)"
    fail=1
else
    echo "ok: screenshot $out/status-page.png ($size bytes)"
fi
exit $fail
