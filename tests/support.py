"""Helpers shared by the Python suites and the benchmark runner: a free loopback port, a list
of checks (each printed as it is made), a bounded wait on a condition, and an s3canary daemon
started with a config and read through its /metrics."""
import signal
import socket
import subprocess
import time
import urllib.request

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


def wait(what, limit, cond, report_ok=True, every=0.25):
    """Polls `cond` until it is true or `limit` seconds have passed (a connection refused or a
    value not there yet counts as false); checks `what` either way and answers whether it held.
    With report_ok=False only a failure is printed."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            if cond():
                if report_ok:
                    check(True, what)
                return True
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(every)
    check(False, f"{what} (within {limit:.0f}s)")
    return False


def get(url, timeout=5):
    """The body of a GET of `url`, as text."""
    return urllib.request.urlopen(url, timeout=timeout).read().decode()


def sample(text, name, **labels):
    """The sum of the samples of `name` in the exposition `text` whose labels include `labels`
    (0 when there are none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, v = line.rsplit(" ", 1)
            if all(f'{k}="{w}"' in series for k, w in labels.items()):
                total += float(v)
    return total


class Daemon:
    """`s3canary run --config CONFIG` listening on 127.0.0.1:PORT (the config says so), its
    log in LOG."""

    def __init__(self, binary, config, port, log, env):
        self.port = port
        self.log = log
        self.proc = subprocess.Popen([str(binary), "run", "--config", str(config)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=open(log, "w"))

    def ready(self, limit=20):
        """Waits until /-/ready answers 200 (checked)."""
        return wait(f"daemon ({self.log.name}) ready", limit, lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/-/ready", timeout=2).status == 200)

    def metrics(self):
        return get(f"http://127.0.0.1:{self.port}/metrics")

    def value(self, name, **labels):
        """The sum of `name`'s samples with `labels` (see `sample`)."""
        return sample(self.metrics(), name, **labels)

    def stop(self):
        """SIGTERM, and checks the daemon exits 0 within 30 s."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = "killed after 30 s"
        check(code == 0, f"the daemon exits 0 on SIGTERM ({code})")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def embedded_env():
    """The environment for s3canary against the embedded S3 server: its credentials, no AWS
    profile, no instance metadata lookups."""
    import os
    env = dict(os.environ, AWS_ACCESS_KEY_ID="s3canary-embedded",
               AWS_SECRET_ACCESS_KEY="s3canary-embedded-secret", AWS_EC2_METADATA_DISABLED="true")
    env.pop("AWS_PROFILE", None)
    env.pop("S3CANARY_CONFIG", None)
    return env


def target_toml(name, bucket, endpoint, extra=""):
    """A `[[target]]` table on a path-style loopback endpoint in us-east-1."""
    return (f'\n[[target]]\nname = "{name}"\nbucket = "{bucket}"\nregion = "us-east-1"\n'
            f'endpoint = "{endpoint}"\npath_style = true\n{extra}')


class Processes:
    """The processes a suite starts, each logging to OUT/NAME.log; `stop` ends them all
    (SIGTERM, then SIGKILL after 15 s)."""

    def __init__(self, out):
        self.out = out
        self.procs = []

    def start(self, name, cmd, **kw):
        p = subprocess.Popen(cmd, stdout=open(self.out / f"{name}.log", "w"), stderr=subprocess.STDOUT, **kw)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def nginx_conf(out, http_body):
    """An nginx config that runs in the foreground with its pid, logs and temporary files under
    `out` (its `tmp` folder must exist), one worker, and `http_body` inside `http { }`."""
    import os
    user = "user root;" if os.geteuid() == 0 else ""
    temp = "".join(f"    {kind}_temp_path {out}/tmp/{name};\n" for kind, name in [
        ("client_body", "body"), ("proxy", "proxy"), ("fastcgi", "fastcgi"), ("uwsgi", "uwsgi"),
        ("scgi", "scgi")])
    return (f"{user}\nworker_processes 1;\ndaemon off;\npid {out}/nginx.pid;\n"
            f"error_log {out}/nginx-error.log warn;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n    access_log {out}/nginx-access.log;\n{temp}{http_body}\n}}\n")
