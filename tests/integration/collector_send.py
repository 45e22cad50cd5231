#!/usr/bin/env python3
"""Test helper: sends hand-made datagrams to the collector socket
($LLMGUARD_COLLECTOR).  Modes:
  events FILE       each line of FILE is one datagram (must be valid JSON text)
  claim ID          one event claiming pid 1, uid 4242, gid 4242, exe /bin/false
  bad               the bad-input battery; prints the expected drop counts as JSON
  flood SECONDS     blast valid events without pause, ignoring EAGAIN; prints count
"""
import json, os, random, socket, sys, time

path = os.environ["LLMGUARD_COLLECTOR"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

def send(b, block=True):
    while True:
        try:
            s.sendto(b, path)
            return True
        except BlockingIOError:
            if not block:
                return False
            time.sleep(0.001)

def ev(i, **kw):
    e = {"v": 1, "id": i, "ts": "2025-01-01T00:00:00.000000Z", "decision": "allow"}
    e.update(kw)
    return json.dumps(e).encode()

mode = sys.argv[1]
if mode == "events":
    for line in open(sys.argv[2], "rb"):
        if line.strip():
            send(line.rstrip(b"\n"))
elif mode == "claim":
    send(ev(sys.argv[2], pid=1, uid=4242, gid=4242, exe="/bin/false"))
    print(os.getpid())
elif mode == "bad":
    rnd = random.Random(4)
    n = {"garbage": 0, "oversize": 0, "bad_utf8": 0, "invalid": 0, "good": 0}
    # SO_SNDBUFFORCE (32) lets root send datagrams larger than wmem_max
    try:
        s.setsockopt(socket.SOL_SOCKET, 32, 8 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.setblocking(False)
    for i in range(200):              # random ASCII noise: never JSON
        send(bytes(rnd.choice(b"abc{}[]:,0123 \"") for _ in range(rnd.randint(1, 300))) + b"}{")
        n["garbage"] += 1
    for i in range(100):              # truncated JSON
        full = ev("trunc-%d" % i, note="x" * 50)
        send(full[: rnd.randint(1, len(full) - 1)])
        n["garbage"] += 1
    for i in range(100):              # invalid UTF-8
        send(b'{"v":1,"id":"u8-%d","x":"\xff\xfe%c"}' % (i, 0x80 + i % 64))
        n["bad_utf8"] += 1
    send(b'{"v":1,"id":"surrogate","x":"\xed\xa0\x80"}'); n["bad_utf8"] += 1
    send(b'{"v":1,"id":"overlong","x":"\xc0\xaf"}'); n["bad_utf8"] += 1
    for big in (70 * 1024, 1 << 20):  # oversize, including 1 MiB
        for k in range(3):
            send(b'{"v":1,"id":"big","x":"' + b"a" * big + b'"}')
            n["oversize"] += 1
            send(ev("after-big-%d-%d" % (big, k)))   # must not be lost behind it
            n["good"] += 1
    send(b"[" * 100000 + b"]" * 100000)  # deeper than any parser limit: oversize too
    n["oversize"] += 1
    send(b"[" * 30000 + b"]" * 30000)    # 60 KB of nesting
    n["garbage"] += 1
    deep = b'{"v":1,"id":"deep-ok","x":' + b"[" * 200 + b"]" * 200 + b"}"
    send(deep); n["good"] += 1
    for b in (b'{"no":"id"}', b"[1,2,3]", b'"just a string"', b"42",
              b'{"v":1,"id":""}', b'{"v":1,"id":"has space"}', b'{"v":"1","id":"x"}',
              b'{"v":1,"id":7}'):
        send(b); n["invalid"] += 1
    send(b""); n["garbage"] += 1
    print(json.dumps(n))
elif mode == "flood":
    s.setblocking(False)
    end = time.time() + float(sys.argv[2])
    sent = i = 0
    while time.time() < end:
        i += 1
        if send(ev("flood-%d-%d" % (os.getpid(), i)), block=False):
            sent += 1
    print(sent)
