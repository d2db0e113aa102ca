"""Helpers shared by the Python suites and the benchmark runner: a free loopback port and a
list of checks, each printed as it is made."""
import socket

failures = []


def check(ok, what):
    """Prints `what` as passed or failed and remembers a failure."""
    print(("ok:   " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failures.append(what)


def free_port():
    """A TCP port free on 127.0.0.1 now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
