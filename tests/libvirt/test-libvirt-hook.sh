#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# vmmgr-libvirt-hook, the program libvirt runs as
# /etc/libvirt/hooks/qemu.d/vmmgr (suite unit; no libvirt, no root): run as
# libvirt runs it, with crafted domain XML on stdin, against no vmmgrd, a
# peer that accepts and never answers, and peers that answer 202 and 404
# and record what they were sent.
#
# Usage: test-libvirt-hook.sh VMMGR-LIBVIRT-HOOK
set -u

hook=$1
if ! command -v python3 >/dev/null 2>&1; then
        echo "SKIP: python3 is needed for the scripted vmmgrd peers"
        exit 77
fi
for tool in timeout mkfifo date; do
        if ! command -v "$tool" >/dev/null 2>&1; then
                echo "SKIP: $tool is needed"
                exit 77
        fi
done

dir=$(mktemp -d /tmp/vmmgr-test-hook-XXXXXX)
peer_pid=
cleanup() {
        if [ -n "$peer_pid" ]; then
                kill "$peer_pid" 2>/dev/null
                wait "$peer_pid" 2>/dev/null
        fi
        rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
failed=0
ns=https://vmmgr.example.org/xmlns/credits/1
uuid=6A1D4A5E-0F3B-4C2A-9E7D-1B2C3D4E5F60 # libvirt writes lowercase; any case is a UUID
uuid_canonical=6a1d4a5e-0f3b-4c2a-9e7d-1b2c3d4e5f60
bound_ms=2000 # the hook's default bound on the exchange with vmmgrd

fail() {
        echo "FAIL: $*"
        failed=1
}

now_ms() {
        echo $(($(date +%s%N) / 1000000))
}

# domain FILE [METADATA]: a domain definition like the one libvirt passes.
domain() {
        cat >"$1" <<EOF
<domain type='kvm'>
  <name>web1</name>
  <uuid>$uuid</uuid>
  <memory unit='KiB'>1048576</memory>
  <vcpu placement='static'>2</vcpu>
  <metadata>
    <other:app xmlns:other="https://other.example.org/1">kept as it is</other:app>
    ${2:-}
  </metadata>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
</domain>
EOF
}

# run NAME INPUT ARGS...: runs the hook (at most 30 s) with INPUT on stdin;
# sets rc, out (stdout), err (stderr) and ms (wall time).
run() {
        name=$1 input=$2
        shift 2
        t0=$(now_ms)
        timeout 30 "$hook" "$@" <"$input" >"$dir/out" 2>"$dir/err"
        rc=$?
        ms=$(($(now_ms) - t0))
        out=$(cat "$dir/out")
        err=$(cat "$dir/err")
        [ "$rc" -ne 124 ] || fail "$name: the hook did not return within 30 s"
}

# expect NAME RC ERR-NEEDLE: the last run exited RC with nothing on stdout,
# and stderr holds ERR-NEEDLE ("" for an empty stderr).
expect() {
        if [ "$rc" -ne "$2" ]; then
                fail "$1: exit $rc, expected $2; stderr: $err"
        elif [ -n "$out" ]; then
                fail "$1: wrote to stdout: $out"
        elif [ -z "$3" ] && [ -n "$err" ]; then
                fail "$1: expected no message, got: $err"
        elif [ -n "$3" ] && ! printf '%s' "$err" | grep -qF -- "$3"; then
                fail "$1: no \"$3\" in stderr: $err"
        elif [ "$(printf '%s\n' "$err" | wc -l)" -gt 1 ]; then
                fail "$1: more than one line on stderr: $err"
        else
                echo "ok: $1 -> $rc${err:+ ($err)}"
        fi
}

# ---- the scripted vmmgrd peers ------------------------------------------------
# peer.py MODE SOCKET READY RECORD: listens on SOCKET, writes "ready" to the
# fifo READY, then per MODE: "silent" accepts and never answers; "202" or
# "404" reads one HTTP request per connection, appends it to RECORD as a
# JSON line and answers that status with a JSON body.
cat >"$dir/peer.py" <<'EOF'
import json, os, socket, sys

mode, path, ready, record = sys.argv[1:5]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(16)
with open(ready, "w") as f:
    f.write("ready\n")
held = []
while True:
    conn, _ = srv.accept()
    if mode == "silent":
        held.append(conn)  # keep it open, say nothing
        continue
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    with open(record, "a") as f:
        f.write(json.dumps({"method": method, "path": target,
                            "content_type": headers.get("content-type"),
                            "body": body.decode("utf-8", "replace")}) + "\n")
    if mode == "202":
        status, reply = "202 Accepted", {"accepted": True}
    else:
        status, reply = "404 Not Found", {"error": "libvirt integration is off"}
    out = json.dumps(reply).encode()
    conn.sendall(("HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                  "Content-Length: %d\r\nConnection: close\r\n\r\n" % (status, len(out))).encode() + out)
    conn.close()
EOF

# start_peer MODE: a peer on $dir/vmmgr.sock, ready when this returns.
start_peer() {
        stop_peer
        rm -f "$dir/vmmgr.sock" "$dir/ready" "$dir/record"
        mkfifo "$dir/ready"
        python3 "$dir/peer.py" "$1" "$dir/vmmgr.sock" "$dir/ready" "$dir/record" &
        peer_pid=$!
        # The fifo's writer opens it after listen(): no polling.
        if ! timeout 10 cat "$dir/ready" >/dev/null; then
                fail "the $1 peer did not start"
                return 1
        fi
}

stop_peer() {
        if [ -n "$peer_pid" ]; then
                kill "$peer_pid" 2>/dev/null
                wait "$peer_pid" 2>/dev/null
                peer_pid=
        fi
}

# ---- arguments -----------------------------------------------------------------
domain "$dir/plain.xml"
run "--help" /dev/null --help
if [ "$rc" -ne 0 ] || ! printf '%s' "$out" | grep -qF "qemu.d/vmmgr" ||
        ! printf '%s' "$out" | grep -qF "VMMGR_HOOK_TIMEOUT_MS"; then
        fail "--help: exit $rc, or no installation path or environment in: $out"
else
        echo "ok: --help -> 0"
fi
run "prepare with missing arguments" "$dir/plain.xml" web1 prepare
expect "prepare with missing arguments" 1 "Usage:"
run "started with missing arguments" "$dir/plain.xml" web1 started
expect "started with missing arguments" 0 "Usage:"
run "no arguments" "$dir/plain.xml"
expect "no arguments" 0 "Usage:"

# ---- prepare: the credit spec's syntax -------------------------------------------
run "prepare, no metadata" "$dir/plain.xml" web1 prepare begin -
expect "prepare, no metadata" 0 ""

domain "$dir/class.xml" "<vmmgr:credits xmlns:vmmgr=\"$ns\" class=\"t3.small\"/>"
run "prepare, a class" "$dir/class.xml" web1 prepare begin -
expect "prepare, a class" 0 ""

# An unknown class is vmmgrd's to judge (it has the config); the hook checks syntax.
domain "$dir/unknown-class.xml" "<vmmgr:credits xmlns:vmmgr=\"$ns\" class=\"no.such.class\" baseline=\"20%\" cap=\"288cr\" launch=\"30cr\" mode=\"unlimited\"/>"
run "prepare, every attribute, a class vmmgrd may not know" "$dir/unknown-class.xml" web1 prepare begin -
expect "prepare, every attribute, a class vmmgrd may not know" 0 ""

domain "$dir/baseline.xml" "<vmmgr:credits xmlns:vmmgr=\"$ns\" class=\"t3.small\" baseline=\"150%\"/>"
run "prepare, baseline 150%" "$dir/baseline.xml" web1 prepare begin -
expect "prepare, baseline 150%" 1 "vmmgr: domain web1: <vmmgr:credits>: baseline: out of range: '150%'"

domain "$dir/unknown-attr.xml" "<vmmgr:credits xmlns:vmmgr=\"$ns\" vcpus=\"4\"/>"
run "prepare, unknown attribute" "$dir/unknown-attr.xml" web1 prepare begin -
expect "prepare, unknown attribute" 1 "unknown attribute 'vcpus'"

domain "$dir/no-unit.xml" "<vmmgr:credits xmlns:vmmgr=\"$ns\" launch=\"30\"/>"
run "prepare, an amount without a unit" "$dir/no-unit.xml" web1 prepare begin -
expect "prepare, an amount without a unit" 1 "launch: "

domain "$dir/child.xml" "<vmmgr:credits xmlns:vmmgr=\"$ns\"><class>t3.small</class></vmmgr:credits>"
run "prepare, a child element" "$dir/child.xml" web1 prepare begin -
expect "prepare, a child element" 1 "<credits> takes attributes only"

domain "$dir/broken.xml" "<vmmgr:credits xmlns:vmmgr=\"$ns\" class=\"t3.small\">"
run "prepare, not well-formed element" "$dir/broken.xml" web1 prepare begin -
expect "prepare, not well-formed element" 1 "not well-formed"

domain "$dir/unquoted.xml" "<vmmgr:credits xmlns:vmmgr=\"$ns\" class=t3.small/>"
run "prepare, unquoted attribute" "$dir/unquoted.xml" web1 prepare begin -
expect "prepare, unquoted attribute" 1 "not well-formed"

# A name with a newline stays on one line.
run "prepare, a name with a newline" "$dir/baseline.xml" "$(printf 'web\n1')" prepare begin -
expect "prepare, a name with a newline" 1 "vmmgr: domain web?1: <vmmgr:credits>: baseline"

# What the hook cannot judge does not refuse the start.
run "prepare, empty stdin" /dev/null web1 prepare begin -
expect "prepare, empty stdin" 0 "no domain XML on stdin"
python3 - "$dir/huge.xml" "$ns" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("<domain><name>web1</name><description>" + "x" * (5 << 20) + "</description>"
            "<metadata><vmmgr:credits xmlns:vmmgr='%s' baseline='150%%'/></metadata></domain>" % sys.argv[2])
EOF
run "prepare, XML over 4 MiB" "$dir/huge.xml" web1 prepare begin -
expect "prepare, XML over 4 MiB" 0 "not checked"

# ---- migrate and restore: stdin taken, stdout empty, never a failure -------------
for op in migrate restore; do
        for xml in plain baseline broken huge; do
                run "$op, $xml.xml" "$dir/$xml.xml" web1 "$op" begin -
                expect "$op, $xml.xml" 0 ""
        done
done

# ---- reconnect, attach, start, unknown: 0 and silent, whatever stdin is ----------
printf 'garbage \001\002 <domain' >"$dir/garbage"
for op in reconnect attach start no-such-operation; do
        run "$op, garbage on stdin" "$dir/garbage" web1 "$op" begin -
        expect "$op, garbage on stdin" 0 ""
done
t0=$(now_ms)
timeout 30 "$hook" web1 reconnect begin - <&- >"$dir/out" 2>"$dir/err"
rc=$? ms=$(($(now_ms) - t0)) out=$(cat "$dir/out") err=$(cat "$dir/err")
expect "reconnect, stdin closed" 0 ""
run "reconnect, missing arguments" "$dir/garbage" web1 reconnect
expect "reconnect, missing arguments" 0 "Usage:"

# ---- started, stopped, release: tell vmmgrd, never fail ---------------------------
export VMMGR_SOCKET="$dir/vmmgr.sock"
unset VMMGR_HOOK_TIMEOUT_MS

run "started, no vmmgrd" "$dir/plain.xml" web1 started begin -
expect "started, no vmmgrd" 0 "vmmgrd is not running"
echo "   (took $ms ms)"
[ "$ms" -lt "$bound_ms" ] || fail "started, no vmmgrd: took $ms ms, the bound is $bound_ms ms"

printf '<domain><name>web1</name><uuid>not-a-uuid</uuid></domain>' >"$dir/bad-uuid.xml"
run "release, bad uuid" "$dir/bad-uuid.xml" web1 release end -
expect "release, bad uuid" 0 "<uuid> is not a UUID"
printf '<domain><name>web1</name></domain>' >"$dir/no-uuid.xml"
run "stopped, no uuid" "$dir/no-uuid.xml" web1 stopped end -
expect "stopped, no uuid" 0 "has no <uuid>"
run "started, garbage" "$dir/garbage" web1 started begin -
expect "started, garbage" 0 "not a libvirt domain definition"
run "started, XML over 4 MiB" "$dir/huge.xml" web1 started begin -
expect "started, XML over 4 MiB" 0 "over 4 MiB"

if start_peer silent; then
        run "started, vmmgrd never answers" "$dir/plain.xml" web1 started begin -
        expect "started, vmmgrd never answers" 0 "did not answer within $bound_ms ms"
        echo "   (took $ms ms; bound $bound_ms ms)"
        [ "$ms" -le $((bound_ms + 3000)) ] ||
                fail "started, vmmgrd never answers: took $ms ms, more than the bound + 3 s"

        export VMMGR_HOOK_TIMEOUT_MS=500
        run "started, a 500 ms bound" "$dir/plain.xml" web1 started begin -
        expect "started, a 500 ms bound" 0 "did not answer within 500 ms"
        echo "   (took $ms ms)"
        [ "$ms" -le 3500 ] || fail "started, a 500 ms bound: took $ms ms"

        export VMMGR_HOOK_TIMEOUT_MS=1
        run "started, a 1 ms bound is raised to 100 ms" "$dir/plain.xml" web1 started begin -
        expect "started, a 1 ms bound is raised to 100 ms" 0 "did not answer within 100 ms"

        # A bad value: its own line, then the default bound.
        export VMMGR_HOOK_TIMEOUT_MS=soon
        run "started, a bad bound" "$dir/plain.xml" web1 started begin -
        if [ "$rc" -ne 0 ] || [ -n "$out" ] ||
                [ "$(printf '%s\n' "$err" | head -n 1)" != \
                        "vmmgr: VMMGR_HOOK_TIMEOUT_MS=\"soon\" is not a number of ms; using $bound_ms" ] ||
                ! printf '%s\n' "$err" | sed -n 2p | grep -qF "did not answer within $bound_ms ms" ||
                [ "$(printf '%s\n' "$err" | wc -l)" -ne 2 ]; then
                fail "started, a bad bound: exit $rc; stdout: $out; stderr: $err"
        else
                echo "ok: started, a bad bound -> 0 ($err)"
        fi
        unset VMMGR_HOOK_TIMEOUT_MS
fi

# check_request N OPERATION SUB-OPERATION NAME: the peer's Nth request.
check_request() {
        if ! python3 - "$dir/record" "$@" "$uuid_canonical" <<'EOF'; then
import json, sys
record, n, op, subop, name, uuid = sys.argv[1:7]
reqs = [json.loads(line) for line in open(record)]
req = reqs[int(n) - 1]
want_path = "/v1/libvirt/domains/%s/notify" % uuid
assert req["method"] == "POST", req
assert req["path"] == want_path, (req["path"], want_path)
assert req["content_type"] == "application/json", req
body = json.loads(req["body"])
want = {"name": name, "operation": op, "sub_operation": subop}
assert body == want, (body, want)
print("   request %s: %s %s %s" % (n, req["method"], req["path"], req["body"]))
EOF
                fail "request $1 ($2 $3) is not what vmmgrd expects"
        fi
}

if start_peer 202; then
        run "started, vmmgrd answers 202" "$dir/plain.xml" web1 started begin -
        expect "started, vmmgrd answers 202" 0 ""
        check_request 1 started begin web1
        # libvirt 9.0 passes "-" as release's sub-operation.
        run "release, vmmgrd answers 202" "$dir/plain.xml" web1 release - -
        expect "release, vmmgrd answers 202" 0 ""
        check_request 2 release - web1
        # The name goes into the body as JSON, quotes and backslashes too.
        run "stopped, a name to escape" "$dir/plain.xml" 'we"b\1' stopped end -
        expect "stopped, a name to escape" 0 ""
        check_request 3 stopped end 'we"b\1'
        n=$(wc -l <"$dir/record")
        [ "$n" -eq 3 ] || fail "the peer saw $n requests, expected 3"
fi

if start_peer 404; then
        run "started, vmmgrd answers 404" "$dir/plain.xml" web1 started begin -
        expect "started, vmmgrd answers 404" 0 "vmmgrd answered 404: libvirt integration is off"
        check_request 1 started begin web1
fi
stop_peer

if [ "$failed" -ne 0 ]; then
        echo "FAILED"
        exit 1
fi
echo "all passed"
