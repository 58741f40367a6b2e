#!/usr/bin/env python3
# Regenerates the libFuzzer seed corpus (tests/qmp/corpus/) from the QEMU
# 7.2 replies in tests/qmp/data/.  Input format of fuzz-qmp-reader: byte 0
# seeds the read chunking, byte 1 bit 0 picks a 4 KiB message cap, then the
# byte stream a QMP peer sends.  Ids 2..8 are the typed commands the fuzz
# target queues (see qmp/fuzz/fuzz-qmp-reader.c), id 9 a generic one.
import os, json
here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, 'data')
out = os.path.join(here, 'corpus')
os.makedirs(out, exist_ok=True)

def fx(name):
    with open(os.path.join(data, name + '.json'), 'rb') as f:
        return f.read().strip()

def with_id(msg, i):
    assert msg.startswith(b'{')
    return b'{"id": %d, ' % i + msg[1:] + b'\r\n'

def ev(name, data=None):
    m = {'timestamp': {'seconds': 1700000000, 'microseconds': 123456}, 'event': name}
    if data is not None:
        m['data'] = data
    return json.dumps(m).encode() + b'\r\n'

typed = ['query-status', 'query-cpus-fast', 'query-iothreads', 'query-memory-size-summary',
         'query-balloon', 'query-pci', 'query-migrate-active']
greeting = fx('greeting') + b'\r\n'
caps = with_id(b'{"return": {}}', 1)

def write(name, ctl, body):
    with open(os.path.join(out, name), 'wb') as f:
        f.write(bytes(ctl) + body)

full = greeting + caps + ev('STOP')
for i, t in enumerate(typed):
    full += with_id(fx(t), i + 2)
full += ev('RESUME') + with_id(fx('error-command-not-found'), 9)
write('session-full', [0, 0], full)
write('session-split-4k-cap', [0x37, 1], full)
for i, t in enumerate(typed):
    write('reply-' + t, [i * 17, 0], greeting + caps + with_id(fx(t), i + 2))
write('reply-migrate-completed', [5, 0], greeting + caps + with_id(fx('query-migrate-completed'), 8))
write('reply-migrate-none', [6, 0], greeting + caps + with_id(fx('query-migrate-none'), 8))
write('events', [9, 0], greeting + caps +
      ev('MIGRATION', {'status': 'active'}) + ev('MIGRATION_PASS', {'pass': 3}) +
      ev('BALLOON_CHANGE', {'actual': 1073741824}) +
      ev('DEVICE_DELETED', {'device': 'net0', 'path': '/machine/peripheral/net0'}) +
      ev('SHUTDOWN', {'guest': False, 'reason': 'host-qmp-quit'}) + ev('NEW_THING', [1, 2]))
write('unknown-ids', [3, 0], greeting + caps + with_id(b'{"return": {}}', 77) + b'{"return": 5}\r\n')
write('garbage', [1, 0], greeting + caps + b'{"return": tru}\r\n')
write('non-object', [2, 0], greeting + b'[1, 2, 3]\r\n')
write('no-greeting', [4, 0], b'{"hello": "world"}\r\n')
write('deep', [8, 0], greeting + b'[' * 100)
