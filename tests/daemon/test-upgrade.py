#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vmmgrd upgrades without refusing a request (issue 13, item 5;
docs/vmmgrd.md, "Upgrades without refusing a request").

A holder stands in for systemd: it owns the API's listening UNIX socket
(vmmgrd.socket's job), passes it to each vmmgrd it starts (LISTEN_FDS,
LISTEN_FDNAMES=api, LISTEN_PID set by an exec wrapper to the child's own
pid), listens on a NOTIFY_SOCKET of its own for READY=1 and for FDSTORE=1
(the TLS listener vmmgrd binds on the first start comes back to it, and is
passed back as "tls" on every later start: systemd's file-descriptor
store), and replaces vmmgrd on command: SIGTERM to the old one, wait for
its exit, start the new one with the same sockets and state directory.

Clients send requests back to back all along -- each its own connection,
two on the UNIX socket and one over TLS on 127.0.0.1, mixing GET /v1/vms,
GET credits and POST credits/inject with an amount unique to the request
-- while vmmgrd is replaced REPLACEMENTS times under a real QEMU guest
(registered, bound, spending).  Then:

  - no request refused: no connect error, reset or hang-up without an
    answer (figure daemon.upgrade.refused_requests, must be 0);
  - every request answered once with its status (200), nothing after the
    answer on its connection;
  - no ledger change lost or doubled: the VM's adjusted_usec moved by the
    sum of the injections answered 200, and the event journal holds each
    of those injections exactly once (none of the others);
  - the TLS listener is the same socket (inode) from the first start to
    the last, kept in the holder's fd store;
  - figure daemon.upgrade.max_latency_ms: the slowest request (connect to
    answer), which is the one that waited through a replacement.

Usage: test-upgrade.py VMMGRD VMMGRCTL [REPLACEMENTS]   (suite qemu: root,
QEMU; the bench suite runs it with more replacements)
"""
import array
import json
import os
import random
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time

VMMGRD, VMMGRCTL = sys.argv[1], sys.argv[2]
REPLACEMENTS = int(sys.argv[3]) if len(sys.argv) > 3 else 4
UUID = "6a1c1f3e-0000-4000-8000-00000000b001"
READY_TIMEOUT = 15.0
REQUEST_TIMEOUT = 20.0


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def fail(why):
    print(f"FAIL: {why}")
    show_log()
    sys.exit(1)


if shutil.which("qemu-system-x86_64") is None:
    skip("qemu-system-x86_64 not installed")
if os.geteuid() != 0:
    skip("needs root (cgroups)")
if shutil.which("openssl") is None:
    skip("openssl not installed (test certificates)")

tmp = tempfile.mkdtemp(prefix="vmmgr-test-upgrade-")
sock_path = os.path.join(tmp, "vmmgr.sock")
notify_path = os.path.join(tmp, "notify.sock")
log_path = os.path.join(tmp, "vmmgrd.log")
subtree = f"vmmgr-test-upg-{os.getpid()}.slice"


def show_log():
    try:
        with open(log_path) as f:
            lines = f.readlines()
        print("--- vmmgrd's log (its end) ---")
        print("".join(lines[-40:]), end="")
        print("--- end ---")
    except OSError:
        pass


# ---- certificates and configuration ------------------------------------------------

def run_quiet(args):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        fail(f"{' '.join(args)}: {r.stdout.decode(errors='replace')}")


def make_certs():
    ca_key, ca = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.pem")
    run_quiet(["openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-days", "1", "-subj", "/CN=vmmgr upgrade test CA", "-keyout", ca_key, "-out", ca,
               "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    exts = {"server": "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            "client": "extendedKeyUsage=clientAuth\n"}
    for kind, ext in exts.items():
        extf = os.path.join(tmp, kind + ".ext")
        with open(extf, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n" + ext)
        key, csr, pem = (os.path.join(tmp, kind + s) for s in (".key", ".csr", ".pem"))
        run_quiet(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                   "-subj", f"/CN=vmmgr-upgrade-{kind}", "-keyout", key, "-out", csr])
        run_quiet(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                   "-CAserial", os.path.join(tmp, "ca.srl"), "-days", "1", "-extfile", extf, "-out", pem])


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


make_certs()
tls_port = free_port()
conf_path = os.path.join(tmp, "vmmgrd.conf")
with open(conf_path, "w") as f:
    f.write(f"""[api.tls]
listen = 127.0.0.1:{tls_port}
cert = {tmp}/server.pem
key = {tmp}/server.key
client_ca = {tmp}/ca.pem

[class upg]
vcpus = 1
baseline = 10%
cap = 3600s
launch = 0s
""")
with open(os.path.join(tmp, "boot.img"), "wb") as f:
    s = bytearray(512)
    s[0:2] = b"\xeb\xfe"  # jmp $: a guest that spins
    s[510:512] = b"\x55\xaa"
    f.write(bytes(s))


# ---- the holder: systemd's part ------------------------------------------------------

class Holder:
    """Owns the listening sockets and the fd store; starts and replaces vmmgrd."""

    FD_BASE = 200  # where the passed descriptors wait in the holder, for the wrapper

    def __init__(self):
        self.api = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.api.bind(sock_path)
        os.chmod(sock_path, 0o660)
        self.api.listen(socket.SOMAXCONN)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(notify_path)
        self.store = []  # (name, fd)
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.messages = []
        self.proc = None
        self.generation = 0
        threading.Thread(target=self.read_notify, daemon=True).start()

    def read_notify(self):
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(self.notify, 4096, 16)
            except OSError:
                return
            text = msg.decode(errors="replace")
            fields = dict(line.split("=", 1) for line in text.split("\n") if "=" in line)
            with self.lock:
                self.messages.append(text)
                if fields.get("FDSTOREREMOVE") == "1":
                    name = fields.get("FDNAME", "stored")
                    for n, fd in [x for x in self.store if x[0] == name]:
                        os.close(fd)
                    self.store = [x for x in self.store if x[0] != name]
                if fields.get("FDSTORE") == "1":
                    name = fields.get("FDNAME", "stored")
                    for fd in fds:
                        st = os.fstat(fd)
                        if any(os.fstat(f).st_ino == st.st_ino for _, f in self.store):
                            os.close(fd)  # systemd suppresses duplicates too
                        else:
                            self.store.append((name, fd))
                    fds = []
                if fields.get("READY") == "1":
                    self.ready.set()
            for fd in fds:
                os.close(fd)

    def stored(self, name):
        with self.lock:
            return [fd for n, fd in self.store if n == name]

    def start(self):
        with self.lock:
            passed = [("api", self.api.fileno())] + list(self.store)
        high = []
        for i, (_, fd) in enumerate(passed):
            os.dup2(fd, self.FD_BASE + i, inheritable=True)
            high.append(self.FD_BASE + i)
        moves = " ".join(f"{3 + i}<&{h}" for i, h in enumerate(high))
        closes = " ".join(f"{h}<&-" for h in high)
        names = ":".join(n for n, _ in passed)
        # LISTEN_PID must be vmmgrd's pid: the shell's, which exec keeps.
        wrapper = (f"exec {moves}; exec {closes}; export LISTEN_PID=$$ LISTEN_FDS={len(passed)} "
                   f"LISTEN_FDNAMES={names}; exec \"$@\"")
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(k, None)
        self.ready.clear()
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["bash", "-c", wrapper, "vmmgrd", VMMGRD, "--foreground", "--state-dir", os.path.join(tmp, "state"),
                 "--socket", sock_path, "--subtree", subtree, "--config", conf_path],
                pass_fds=high, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        for h in high:
            os.close(h)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.ready.wait(0.05):
            if self.proc.poll() is not None:
                fail(f"vmmgrd exited with {self.proc.returncode} before READY=1")
            if time.monotonic() > deadline:
                fail("vmmgrd did not say READY=1")
        self.generation += 1

    def stop(self, timeout=15.0):
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail(f"vmmgrd did not exit within {timeout} s of SIGTERM")
        self.proc = None
        return rc

    def replace(self):
        t0 = time.monotonic()
        rc = self.stop()
        if rc != 0:
            fail(f"the old vmmgrd exited with {rc}")
        t1 = time.monotonic()
        self.start()
        t2 = time.monotonic()
        return (t1 - t0) * 1000, (t2 - t1) * 1000


# ---- a client: one connection per request ---------------------------------------------

class Refused(Exception):
    pass


def tls_context():
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=os.path.join(tmp, "ca.pem"))
    ctx.load_cert_chain(os.path.join(tmp, "client.pem"), os.path.join(tmp, "client.key"))
    return ctx


def http(method, path, body=None, tls=None):
    """One request on a new connection; (status, json body, latency ms).
    Raises Refused for anything that is not exactly one whole answer."""
    data = json.dumps(body).encode() if body is not None else b""
    req = (f"{method} {path} HTTP/1.1\r\nHost: vmmgr\r\nConnection: close\r\n"
           + (f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n" if body is not None else "")
           + "\r\n").encode() + data
    t0 = time.monotonic()
    try:
        if tls:
            raw = socket.create_connection(("127.0.0.1", tls_port), timeout=REQUEST_TIMEOUT)
            s = tls.wrap_socket(raw, server_hostname="127.0.0.1")
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(REQUEST_TIMEOUT)
            s.connect(sock_path)
        with s:
            s.sendall(req)
            buf = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except ssl.SSLError as e:  # no close_notify before EOF
                    if "EOF" in str(e) or "UNEXPECTED_EOF" in str(e):
                        break
                    raise
                if not chunk:
                    break
                buf += chunk
    except (OSError, ssl.SSLError) as e:
        raise Refused(f"{type(e).__name__}: {e}")
    latency = (time.monotonic() - t0) * 1000
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 "):
        raise Refused(f"no answer ({len(buf)} bytes)")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    n = int(hdrs.get("content-length", "-1"))
    if n < 0 or len(rest) != n:
        # A second answer, or a cut one.
        raise Refused(f"answer body of {len(rest)} bytes, Content-Length {n}")
    return status, (json.loads(rest) if rest else None), latency


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = self.answered = 0
        self.refused = []
        self.bad_status = []
        self.latencies = []
        self.slowest = []  # (ms, client, request, started at: seconds into the run)
        self.injected = {}  # amount -> answered 200
        self.not_injected = set()


stats = Stats()
stop_clients = threading.Event()
amount_seq = iter(range(1000, 10 ** 9))
amount_lock = threading.Lock()
run_t0 = time.monotonic()


def client(name, tls):
    ctx = tls_context() if tls else None
    rnd = random.Random(name)
    while not stop_clients.is_set():
        kind = rnd.choice(["list", "credits", "inject", "inject"])
        amount = None
        if kind == "list":
            args = ("GET", "/v1/vms")
        elif kind == "credits":
            args = ("GET", f"/v1/vms/{UUID}/credits")
        else:
            with amount_lock:
                amount = next(amount_seq)
            args = ("POST", f"/v1/vms/{UUID}/credits/inject", {"amount_usec": amount})
        with stats.lock:
            stats.sent += 1
        t_start = time.monotonic() - run_t0
        try:
            status, body, ms = http(*args, tls=ctx)
        except Refused as e:
            with stats.lock:
                stats.refused.append(f"{name} {args[0]} {args[1]}: {e}")
                if amount is not None:
                    stats.not_injected.add(amount)
            continue
        with stats.lock:
            stats.answered += 1
            stats.latencies.append(ms)
            stats.slowest = sorted(stats.slowest + [(ms, name, f"{args[0]} {args[1]}", t_start)], reverse=True)[:5]
            if status != 200:
                stats.bad_status.append(f"{name} {args[0]} {args[1]}: {status} {body}")
            if amount is not None:
                if status == 200:
                    stats.injected[amount] = True
                else:
                    stats.not_injected.add(amount)
        time.sleep(0.002)


# ---- the run ------------------------------------------------------------------------------

qemu_pidfile = os.path.join(tmp, "vm.pid")
holder = None


def cleanup():
    if holder:
        try:
            holder.stop(10)
        except SystemExit:
            pass
    try:
        with open(qemu_pidfile) as f:
            os.kill(int(f.read()), signal.SIGTERM)
    except (OSError, ValueError):
        pass
    time.sleep(0.3)
    for base in ["/sys/fs/cgroup"] + [os.path.join("/sys/fs/cgroup", d) for d in os.listdir("/sys/fs/cgroup")]:
        top = os.path.join(base, subtree)
        if os.path.isdir(top):
            for root, dirs, _ in os.walk(top, topdown=False):
                try:
                    os.rmdir(root)
                except OSError:
                    pass
    if os.environ.get("VMMGR_TEST_KEEP"):
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def ctl(*args):
    r = subprocess.run([VMMGRCTL, *args, "--socket", sock_path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        fail(f"vmmgrctl {' '.join(args)}: {r.stdout.decode(errors='replace')}")
    return r.stdout.decode()


def credits():
    status, body, _ = http("GET", f"/v1/vms/{UUID}/credits")
    if status != 200:
        fail(f"GET credits: {status} {body}")
    return body


def inject_events():
    """amount_usec of every inject event of the VM, from the journal."""
    out, since = [], 0
    while True:
        status, body, _ = http("GET", f"/v1/events?since={since}&limit=1000")
        if status != 200:
            fail(f"GET events: {status} {body}")
        for e in body["events"]:
            if e.get("vm") == UUID and e.get("kind") == "inject":
                out.append(e["detail"]["amount_usec"])
        if not body["events"] or body["next"] == since:
            return out
        since = body["next"]


try:
    holder = Holder()
    holder.start()
    tls_fds = holder.stored("tls")
    if len(tls_fds) != 1:
        fail(f"vmmgrd did not hand its TLS listener to the fd store (stored: {holder.store}, "
             f"messages: {holder.messages})")
    tls_inode = os.fstat(tls_fds[0]).st_ino
    print(f"ok: vmmgrd is up on the holder's socket; its TLS listener (port {tls_port}) is in the fd store")

    subprocess.run(["qemu-system-x86_64", "-accel", "tcg", "-nodefaults", "-display", "none", "-m", "32",
                    "-uuid", UUID, "-drive", f"file={tmp}/boot.img,format=raw,if=floppy,readonly=on",
                    "-qmp", f"unix:{tmp}/vm.qmp,server=on,wait=off", "-daemonize", "-pidfile", qemu_pidfile],
                   check=True)
    time.sleep(0.3)
    ctl("vm", "add", UUID, "--qmp", f"{tmp}/vm.qmp", "--class", "upg")
    before = credits()["adjusted_usec"]
    events_before = len(inject_events())

    threads = [threading.Thread(target=client, args=(n, t)) for n, t in
               (("unix-1", False), ("unix-2", False), ("tls-1", True))]
    for t in threads:
        t.start()
    time.sleep(1.0)
    gaps = []
    for i in range(REPLACEMENTS):
        t_replace = time.monotonic() - run_t0
        stop_ms, start_ms = holder.replace()
        gaps.append((stop_ms, start_ms))
        print(f"ok: replacement {i + 1} at {t_replace:.3f} s: old vmmgrd drained and exited in {stop_ms:.0f} ms, "
              f"the new one ready in {start_ms:.0f} ms")
        time.sleep(1.0)
    stop_clients.set()
    for t in threads:
        t.join(REQUEST_TIMEOUT + 5)
        if t.is_alive():
            fail("a client is stuck")

    # ---- the checks ---------------------------------------------------------------------
    print(f"requests: {stats.sent} sent, {stats.answered} answered, {len(stats.refused)} refused, "
          f"{len(stats.bad_status)} not 200, {len(stats.injected)} injections answered 200")
    print(f"figure: daemon.upgrade.refused_requests {len(stats.refused)}")
    print(f"figure: daemon.upgrade.max_latency_ms {max(stats.latencies):.1f} ms "
          f"(p50 {sorted(stats.latencies)[len(stats.latencies) // 2]:.1f} ms, "
          f"{REPLACEMENTS} replacements, {stats.answered} requests)")
    for ms, name, what, t in stats.slowest:
        print(f"  slow: {ms:.1f} ms {name} {what} sent at {t:.3f} s")
    for r in stats.refused[:10]:
        print("  refused:", r)
    for r in stats.bad_status[:10]:
        print("  not 200:", r)
    if stats.refused:
        fail(f"{len(stats.refused)} request(s) refused or not answered")
    if stats.bad_status:
        fail(f"{len(stats.bad_status)} request(s) answered with another status than 200")
    if stats.sent != stats.answered:
        fail(f"{stats.sent} requests sent, {stats.answered} answered")
    if holder.generation != REPLACEMENTS + 1:
        fail(f"{holder.generation} vmmgrd processes, expected {REPLACEMENTS + 1}")
    if not stats.injected:
        fail("no injection was answered")

    after = credits()["adjusted_usec"]
    want = sum(stats.injected)
    if after - before != want:
        fail(f"adjusted_usec moved by {after - before}, the injections answered 200 sum to {want}")
    print(f"ok: no ledger change lost or doubled: adjusted_usec +{after - before} = "
          f"{len(stats.injected)} injections")
    journal = inject_events()[events_before:]
    counts = {}
    for a in journal:
        counts[a] = counts.get(a, 0) + 1
    twice = [a for a, n in counts.items() if n > 1]
    missing = [a for a in stats.injected if counts.get(a, 0) != 1]
    extra = [a for a in counts if a not in stats.injected]
    if twice or missing or extra:
        fail(f"journal: {len(twice)} injection(s) recorded twice, {len(missing)} answered but not recorded "
             f"once, {len(extra)} recorded but not answered 200")
    print(f"ok: the journal holds each of the {len(journal)} injections exactly once")

    tls_fds = holder.stored("tls")
    if len(tls_fds) != 1 or os.fstat(tls_fds[0]).st_ino != tls_inode:
        fail("the TLS listener in the fd store changed across the replacements")
    with open(log_path) as f:
        log = f.read()
    passed = log.count("Serving the listening socket(s) systemd passed")
    if passed != REPLACEMENTS + 1 or log.count("and the TLS listener") != REPLACEMENTS:
        fail(f"vmmgrd did not serve the passed sockets at every start ({passed} starts said so)")
    print(f"ok: the same TLS listener across {REPLACEMENTS} replacements (fd store)")
    print("PASS")
finally:
    cleanup()
