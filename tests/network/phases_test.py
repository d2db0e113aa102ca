#!/usr/bin/env python3
"""Request phases and the endpoint's TLS on real parts, all on loopback:

1. nginx (Debian) terminates TLS in front of the embedded S3 server (tests/e2e/fault_s3.rs),
   with a throwaway CA the suite makes with openssl. Through it a daemon's target with
   `ca_file` passes every probe and shows the dns (it names `localhost`), connect and tls
   phases, and the earliest notAfter of the chain nginx serves (the CA's, shorter-lived than
   the server's own certificate). `s3canary once` then fails each refused certificate as
   `tls`, its message saying which: the CA unknown (no `ca_file`), a certificate for another
   host, an expired one.
2. A handshake really delayed: a forwarder whose listener's accept queue is full, so Linux
   drops the daemon's SYN and its TCP sends it again after the 1 s initial retransmission
   timeout (`tc netem` would do it too, but this machine's kernel has no qdisc modules). The
   second lands in the connect phase, not in the first byte. As root it runs in a network
   namespace the suite makes and removes, so no other listener's drops are counted.

usage: phases_test.py S3CANARY_BINARY FAULT_S3_BINARY OUTPUT_DIR
"""
import ctypes
import datetime
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from support import (Processes, check, embedded_env, failures, free_port, get,  # noqa: E402
                     nginx_conf, sample, target_toml, wait)

binary, fault_s3 = sys.argv[1], sys.argv[2]
out = pathlib.Path(sys.argv[3]).resolve() / "phases"
shutil.rmtree(out, ignore_errors=True)
(out / "tmp").mkdir(parents=True)
(out / "newcerts").mkdir()
nginx = shutil.which("nginx") or "/usr/sbin/nginx"
env = embedded_env()


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, cwd=out, capture_output=True)


def not_after(pem):
    """A certificate's notAfter as Unix seconds, as openssl reads it."""
    line = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", str(out / pem)],
                          check=True, capture_output=True, text=True).stdout.strip()
    when = datetime.datetime.strptime(line.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
    return when.replace(tzinfo=datetime.timezone.utc).timestamp()


def make_certificates():
    """A CA valid 20 days; server certificates for localhost valid 30 days, for another host,
    and one that expired in 2020 (`openssl ca` sets any dates)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "20",
            "-subj", "/CN=s3canary throwaway CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    (out / "index.txt").write_text("")
    (out / "serial").write_text("1000\n")
    (out / "ca.cnf").write_text(f"""
[ca]
default_ca = throwaway
[throwaway]
dir = {out}
database = {out}/index.txt
new_certs_dir = {out}/newcerts
serial = {out}/serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
[localhost]
subjectAltName = DNS:localhost,IP:127.0.0.1
basicConstraints = critical,CA:FALSE
extendedKeyUsage = serverAuth
[elsewhere]
subjectAltName = DNS:elsewhere.example
basicConstraints = critical,CA:FALSE
extendedKeyUsage = serverAuth
""")
    for name, ext, dates in [("good", "localhost", ["-days", "30"]),
                             ("wrong-host", "elsewhere", ["-days", "30"]),
                             ("expired", "localhost",
                              ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"])]:
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
                "-in", f"{name}.csr", "-out", f"{name}.pem", "-extensions", ext, "-notext", *dates)
        # nginx serves the chain: the server's certificate, then the CA's.
        (out / f"{name}-chain.pem").write_text((out / f"{name}.pem").read_text() + (out / "ca.pem").read_text())


def tls_through_nginx():
    procs = Processes(out)
    s3_port, control_port, daemon_port = free_port(), free_port(), free_port()
    ports = {name: free_port() for name in ("good", "wrong-host", "expired")}
    servers = "".join(f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {out}/{name}-chain.pem;
        ssl_certificate_key {out}/{name}.key;
        location / {{
            proxy_pass http://127.0.0.1:{s3_port};
            proxy_set_header Host $http_host;
            proxy_request_buffering off;
            client_max_body_size 0;
        }}
    }}""" for name, port in ports.items())
    (out / "nginx.conf").write_text(nginx_conf(out, servers))
    def endpoint(name):
        return f"https://localhost:{ports[name]}"
    ca = f'ca_file = "{out}/ca.pem"\n'
    daemon_config = (f'[server]\nlisten = "127.0.0.1:{daemon_port}"\n\n[defaults]\ninterval = "2s"\n'
                     f'timeout = "1500ms"\n' + target_toml("tls", "canary", endpoint("good"), ca))
    (out / "daemon.toml").write_text(daemon_config)
    once_config = ("[defaults]\ntimeout = \"5s\"\n"
                   + target_toml("unknown-ca", "canary", endpoint("good"), 'probes = ["put"]\n')
                   + target_toml("wrong-host", "canary", endpoint("wrong-host"), 'probes = ["put"]\n' + ca)
                   + target_toml("expired", "canary", endpoint("expired"), 'probes = ["put"]\n' + ca))
    (out / "once.toml").write_text(once_config)
    try:
        procs.start("fault-s3", [fault_s3, f"127.0.0.1:{s3_port}", f"127.0.0.1:{control_port}", "canary"])
        wait("the embedded S3 server is up", 30, lambda: (out / "fault-s3.log").read_text().startswith("ready"))
        procs.start("nginx", [nginx, "-p", str(out), "-c", str(out / "nginx.conf")])
        wait("nginx terminates TLS", 30, lambda: subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{ports['good']}", "-brief"],
            input=b"", capture_output=True, timeout=10).returncode == 0)
        daemon = procs.start("s3canary", [binary, "run", "--config", str(out / "daemon.toml")], env=env)

        def metric(name, **labels):
            return sample(get(f"http://127.0.0.1:{daemon_port}/metrics"), name, target="tls", **labels)
        wait("three cycles through nginx", 60, lambda: metric("s3canary_probe_runs_total", probe="delete") >= 3)
        failed = metric("s3canary_probe_failures_total")
        check(failed == 0, f"with ca_file every probe passes through TLS ({failed:.0f} failures)")
        counts = {p: metric("s3canary_request_phase_seconds_count", phase=p)
                  for p in ("dns", "connect", "tls", "first_byte", "body")}
        opened = metric("s3canary_connections_opened_total")
        print(f"  phases observed: {counts}, connections opened: {opened:.0f}")
        check(opened >= 1 and counts["connect"] == counts["tls"] == counts["dns"] <= opened,
              "each new connection resolved localhost, connected and shook hands once")
        check(counts["first_byte"] > opened,
              f"most requests reused a connection ({counts['first_byte']:.0f} answers, {opened:.0f} connections)")
        tls_mean = metric("s3canary_request_phase_seconds_sum", phase="tls") / max(counts["tls"], 1)
        check(tls_mean > 0, f"the TLS handshake took time ({tls_mean * 1000:.1f} ms on average)")
        expiry = metric("s3canary_endpoint_tls_expiry_timestamp_seconds")
        want = min(not_after("good.pem"), not_after("ca.pem"))
        check(expiry == want and not_after("ca.pem") < not_after("good.pem"),
              f"the TLS expiry is the chain's earliest notAfter, the CA's ({expiry:.0f}, want {want:.0f})")
        daemon.terminate()
        check(daemon.wait(timeout=30) == 0, "the daemon exits 0 on SIGTERM")

        once = subprocess.run([binary, "once", "--config", str(out / "once.toml")], env=env,
                              capture_output=True, text=True, timeout=120)
        (out / "once.txt").write_text(once.stdout + once.stderr)
        check(once.returncode == 1, f"once exits 1 on refused certificates ({once.returncode})")
        for target, words in [("unknown-ca", "signed by a CA this host does not trust"),
                              ("wrong-host", "not for its host name"),
                              ("expired", "has expired (notAfter 2020-01-02T00:00:00Z)")]:
            line = next((l for l in once.stdout.splitlines() if l.startswith(f"{target}/put: ")), "")
            check(line.startswith(f"{target}/put: tls PutObject") and words in line,
                  f"{target}: put fails as tls, saying \"{words}\" ({line!r})")
    finally:
        procs.stop()


def listen_overflows():
    """SYNs this network namespace dropped because a listener's accept queue was full."""
    rows = [line.split() for line in open("/proc/net/netstat") if line.startswith("TcpExt:")]
    return int(dict(zip(rows[0], rows[1]))["ListenOverflows"])


class Gate:
    """A TCP forwarder to `upstream` whose listener starts with a full accept queue (backlog 0,
    one connection made and not accepted), so Linux drops the next SYN and the client's TCP
    sends it again after its 1 s initial retransmission timeout: a handshake really delayed,
    not an accept. `open` empties the queue; from then on every connection is forwarded."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.blocker = socket.create_connection(("127.0.0.1", self.port))

    def open(self):
        self.listener.accept()[0].close()
        self.blocker.close()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                client = self.listener.accept()[0]
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.listener.close()


def enter(ns_path):
    """Moves this (single-threaded) process into the network namespace at `ns_path`; the
    processes it starts from now on are in it too."""
    fd = os.open(ns_path, os.O_RDONLY)
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), f"setns {ns_path}")
    os.close(fd)


def delayed_handshake():
    """A dropped SYN lands in the connect phase, not in the first byte. As root this runs in a
    network namespace of its own, so no other listener's drops count."""
    ns = f"s3canary-phases-{os.getpid()}"
    root = os.geteuid() == 0
    home = "/proc/self/ns/net"
    if root:
        home_fd = os.open(home, os.O_RDONLY)
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        enter(f"/run/netns/{ns}")
    procs = Processes(out)
    s3_port, control_port, daemon_port = free_port(), free_port(), free_port()
    gate = None
    try:
        procs.start("gate-fault-s3", [fault_s3, f"127.0.0.1:{s3_port}", f"127.0.0.1:{control_port}", "canary"])
        wait("the embedded S3 server is up", 30,
             lambda: (out / "gate-fault-s3.log").read_text().startswith("ready"))
        gate = Gate(("127.0.0.1", s3_port))
        # The connect timeout (half the cycle timeout, at most 3 s) outlasts the 1 s retransmission.
        (out / "gate.toml").write_text(
            f'[server]\nlisten = "127.0.0.1:{daemon_port}"\n\n[defaults]\ninterval = "6s"\ntimeout = "5s"\n'
            + target_toml("gate", "canary", f"http://127.0.0.1:{gate.port}"))
        drops = listen_overflows()
        procs.start("gate-s3canary", [binary, "run", "--config", str(out / "gate.toml")], env=env)
        if wait("the daemon's first SYN was dropped (accept queue full)", 30,
                lambda: listen_overflows() > drops):
            gate.open()

        def metric(name, **labels):
            return sample(get(f"http://127.0.0.1:{daemon_port}/metrics"), name, target="gate", **labels)
        wait("a cycle through the gate", 60, lambda: metric("s3canary_probe_runs_total", probe="delete") >= 1)
        connect = metric("s3canary_request_phase_seconds_sum", phase="connect")
        first_byte = metric("s3canary_request_phase_seconds_sum", phase="first_byte")
        answers = metric("s3canary_request_phase_seconds_count", phase="first_byte")
        print(f"  one SYN dropped: connect {connect:.3f} s in all, first byte {first_byte:.3f} s "
              f"over {answers:.0f} answers")
        check(connect >= 1.0, f"the SYN retransmission lands in connect ({connect:.3f} s >= 1 s)")
        check(first_byte < 1.0, f"and not in the first byte ({first_byte:.3f} s in all < 1 s)")
        check(metric("s3canary_probe_failures_total") == 0, "every probe passes through the gate")
    finally:
        procs.stop()
        if gate:
            gate.close()
        if root:
            enter(home)
            os.close(home_fd)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            check(ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout,
                  "the namespace is removed")


make_certificates()
tls_through_nginx()
delayed_handshake()

if failures:
    for name in ("s3canary", "nginx-error", "gate-s3canary", "once.txt"):
        f = out / (name if name.endswith(".txt") else f"{name}.log")
        if f.exists():
            print(f"--- {name} (tail)")
            print("\n".join(f.read_text().splitlines()[-15:]))
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("request phases and TLS on real parts: all checks passed")
