#!/usr/bin/env bash
# Copies alerts/s3canary.rules.yml (the one source of the rules) into the chart, which can only
# read files inside its own folder. tests/helm/helm_test.py checks the copy is identical.
#   deploy/helm/sync-rules.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cp alerts/s3canary.rules.yml deploy/helm/s3canary/files/s3canary.rules.yml
