#!/usr/bin/env bash
# Static checks of the alert rules: promtool syntax, promtool unit tests of every alert, every
# alert has a test, and every runbook_url points at a section of docs/runbook.md.
set -euo pipefail
cd "$(dirname "$0")/.."
promtool check rules alerts/s3canary.rules.yml
(cd alerts/tests && promtool test rules s3canary.rules.test.yml)
status=0
while read -r a; do
    if ! grep -q "alertname: $a\$" alerts/tests/s3canary.rules.test.yml; then
        echo "alert $a has no unit test"; status=1
    fi
    anchor=$(echo "$a" | tr '[:upper:]' '[:lower:]')
    if ! grep -q "runbook.md#$anchor\"" alerts/s3canary.rules.yml; then
        echo "alert $a has no runbook_url to #$anchor"; status=1
    fi
    if ! grep -qi "^## $a\$" docs/runbook.md; then
        echo "docs/runbook.md has no section for $a"; status=1
    fi
done < <(grep -E '^\s+- alert: ' alerts/s3canary.rules.yml | awk '{print $3}')
[ $status -eq 0 ] && echo "every alert has a unit test and a runbook section"
exit $status
