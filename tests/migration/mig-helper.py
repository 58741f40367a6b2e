#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tests/migration/mig-helper.py - the small clients mighosts.sh needs.

Standard library only.  Subcommands:

  events SOCKET LOGFILE [--timeout S]
      Connects (within --timeout), negotiates, writes a first line
      {"event": "_CONNECTED", ...} and then every QMP event QEMU sends as
      one JSON line (flushed at once) until QEMU closes the socket.

  https URL --ca CA --cert CERT --key KEY [--method M] [--body JSON]
        [--timeout S] [--status]
      One HTTPS request with a client certificate; prints the body (or,
      with --status, the status code alone) and exits 0 on 2xx, else says
      the status and body on stderr and exits 1.

  reach HOST PORT [--timeout S]
      Exit 0 when HOST answers a TCP connect to PORT (accepted, or refused
      with a reset: the network path works), 1 when nothing answers.

  stats [--scale K]
      Numbers on stdin, one per line: prints "median=X p90=Y n=N"
      (nearest-rank p90; each value multiplied by K first).
"""
import argparse
import http.client
import json
import math
import os
import socket
import ssl
import statistics
import sys
import time
import urllib.parse


def die(msg, code=1):
    print(f"mig-helper: {msg}", file=sys.stderr)
    sys.exit(code)


class Qmp:
    def __init__(self, path, deadline):
        self.path = path
        self.deadline = deadline
        self.buf = b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._settimeout()
        try:
            self.sock.connect(path)
        except OSError as e:
            die(f"QMP {path}: connect: {e.strerror or e}")
        greeting = self.recv()
        if "QMP" not in greeting:
            die(f"QMP {path}: no greeting, got {greeting!r}")
        self.send({"execute": "qmp_capabilities"})
        self.reply("qmp_capabilities")

    def _settimeout(self):
        if self.deadline == float("inf"):
            self.sock.settimeout(None)
            return
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.sock.settimeout(left)

    def recv(self):
        while b"\n" not in self.buf:
            self._settimeout()
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError()
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            die(f"QMP {self.path}: not JSON: {line[:200]!r}")

    def send(self, obj):
        self._settimeout()
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def reply(self, what):
        while True:
            msg = self.recv()
            if "event" in msg:
                continue
            if "error" in msg:
                e = msg["error"]
                die(f"QMP {self.path}: {what}: {e.get('class')}: {e.get('desc')}")
            if "return" in msg:
                return msg["return"]
            die(f"QMP {self.path}: {what}: unexpected {msg!r}")


def cmd_events(a):
    deadline = time.monotonic() + a.timeout
    try:
        q = Qmp(a.socket, deadline)
    except (socket.timeout, EOFError, OSError) as e:
        die(f"QMP {a.socket}: event logger could not connect: {e!r}")
    q.sock.settimeout(None)
    q.deadline = float("inf")
    with open(a.logfile, "a", encoding="utf-8") as log:
        now = time.time()
        first = {"event": "_CONNECTED",
                 "timestamp": {"seconds": int(now), "microseconds": int((now % 1) * 1e6)}}
        log.write(json.dumps(first, separators=(",", ":")) + "\n")
        log.flush()
        while True:
            try:
                msg = q.recv()
            except (EOFError, OSError):
                return
            if "event" in msg:
                log.write(json.dumps(msg, separators=(",", ":")) + "\n")
                log.flush()


def cmd_https(a):
    u = urllib.parse.urlsplit(a.url)
    if u.scheme != "https" or not u.hostname:
        die(f"not an https URL: {a.url}", 2)
    ctx = ssl.create_default_context(cafile=a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    conn = http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=a.timeout)
    headers = {}
    body = None
    if a.body is not None:
        body = a.body.encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(a.method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read().decode(errors="replace")
    except (OSError, ssl.SSLError, http.client.HTTPException) as e:
        die(f"{a.method} {a.url}: {e}")
    finally:
        conn.close()
    if a.status:
        print(r.status)
    elif data:
        print(data, end="" if data.endswith("\n") else "\n")
    if not 200 <= r.status < 300:
        if not a.status:
            print(f"mig-helper: {a.method} {a.url}: HTTP {r.status}: {data.strip()[:500]}", file=sys.stderr)
        sys.exit(1)


def cmd_reach(a):
    deadline = time.monotonic() + a.timeout
    last = None
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
        try:
            s.connect((a.host, a.port))
            return
        except ConnectionRefusedError:
            return
        except OSError as e:
            last = e
            time.sleep(0.05)
        finally:
            s.close()
    die(f"{a.host}:{a.port} does not answer within {a.timeout} s ({last})")


def cmd_stats(a):
    vals = []
    for line in sys.stdin:
        line = line.strip()
        if line:
            try:
                vals.append(float(line) * a.scale)
            except ValueError:
                die(f"stats: not a number: {line!r}", 2)
    if not vals:
        die("stats: no values")
    vals.sort()
    p90 = vals[max(0, math.ceil(0.9 * len(vals)) - 1)]

    def fmt(x):
        return f"{x:.1f}"
    print(f"median={fmt(statistics.median(vals))} p90={fmt(p90)} n={len(vals)}")


def main():
    p = argparse.ArgumentParser(prog="mig-helper.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("events")
    e.add_argument("socket")
    e.add_argument("logfile")
    e.add_argument("--timeout", type=float, default=5.0)
    e.set_defaults(fn=cmd_events)
    h = sub.add_parser("https")
    h.add_argument("url")
    h.add_argument("--ca", required=True)
    h.add_argument("--cert", required=True)
    h.add_argument("--key", required=True)
    h.add_argument("--method", default="GET")
    h.add_argument("--body")
    h.add_argument("--timeout", type=float, default=5.0)
    h.add_argument("--status", action="store_true")
    h.set_defaults(fn=cmd_https)
    r = sub.add_parser("reach")
    r.add_argument("host")
    r.add_argument("port", type=int)
    r.add_argument("--timeout", type=float, default=5.0)
    r.set_defaults(fn=cmd_reach)
    s = sub.add_parser("stats")
    s.add_argument("--scale", type=float, default=1.0)
    s.set_defaults(fn=cmd_stats)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        os._exit(1)
