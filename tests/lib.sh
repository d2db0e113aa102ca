# shellcheck shell=bash
# Helpers shared by the shell suites (scripts/test, tests/*/*.sh): a free loopback port, a
# bounded wait, and the daemon binary under test. Source it; it defines functions only.

# The binary under test (S3CANARY_BIN overrides the debug build).
s3canary_bin() { echo "${S3CANARY_BIN:-target/debug/s3canary}"; }

# free_port: prints a TCP port that is free on 127.0.0.1 now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for SECONDS DESCRIPTION COMMAND...: runs COMMAND every second until it succeeds or
# SECONDS have passed; says which, and returns non-zero on the latter.
wait_for() {
    local limit=$1 what=$2
    shift 2
    for _ in $(seq 1 "$limit"); do
        if "$@" >/dev/null 2>&1; then
            echo "ok: $what"
            return 0
        fi
        sleep 1
    done
    echo "FAILED: $what (after ${limit}s)"
    return 1
}
