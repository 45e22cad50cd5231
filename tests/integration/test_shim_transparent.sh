#!/usr/bin/env bash
# Programs that never talk to a model server see no change under
# llmguard-run (same output, same exit status, files written intact), and a
# non-HTTP protocol on a loopback port passes through untouched, whether the
# client or the server speaks first.
. "$(dirname "$0")/shim_lib.sh"
need "$run" "$lib"

# ---- ordinary commands ----
check_same() {
  local name=$1; shift
  local a b sa sb
  a=$(cd "$tmp" && "$@" 2>&1); sa=$?
  b=$(cd "$tmp" && timeout 30 "$run" "$@" 2>&1); sb=$?
  if [ "$a" == "$b" ] && [ $sa -eq $sb ]; then ok "$name"; else
    fail "$name differs (status $sa vs $sb)"; diff <(echo "$a") <(echo "$b") | head -5; fi
}
mkdir -p "$tmp/d" && touch "$tmp/d/x" "$tmp/d/y"
check_same "ls" ls -la --time-style=+ "$tmp/d"
check_same "sh pipeline" sh -c 'seq 1 20000 | sort -r | uniq | tail -n 3 | tr 0-9 a-j; exit 3'
check_same "python writes files" "$py" -c '
import os, hashlib
data = os.urandom(1) * 0 + bytes(range(256)) * 4000
with open("f.bin", "wb") as f:
    for i in range(0, len(data), 777): f.write(data[i:i+777])
r, w = os.pipe(); os.write(w, b"through a pipe"); print(os.read(r, 100).decode())
print(hashlib.sha256(open("f.bin","rb").read()).hexdigest(), os.path.getsize("f.bin"))'
check_same "exit status" sh -c 'exit 42'
check_same "stdin passthrough" sh -c 'printf "abc\n" | cat | wc -c'

# ---- non-HTTP on loopback ----
cat > "$tmp/srv.py" <<'PY'
import socket, sys, threading
mode = sys.argv[1]
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[2], "w").write(str(s.getsockname()[1]))
def serve(c):
    if mode == "banner":
        c.sendall(b"220 hello banner protocol\r\n")
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d[::-1])
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
cat > "$tmp/cli.py" <<'PY'
import socket, sys, hashlib
port, mode = int(sys.argv[1]), sys.argv[2]
c = socket.create_connection(("127.0.0.1", port))
out = b""
if mode == "banner":
    out += c.recv(100)
payload = bytes((i * 31 + 7) % 256 for i in range(200000))
total = b""
for i in range(0, len(payload), 9999):
    piece = payload[i:i+9999]
    c.sendall(piece)
    got = b""
    while len(got) < len(piece):
        got += c.recv(len(piece) - len(got))
    total += got
print(out.decode().strip(), hashlib.sha256(total).hexdigest(), len(total))
PY
for mode in clientfirst banner; do
  "$py" "$tmp/srv.py" $mode "$tmp/$mode.port" & pids+=($!)
  for _ in $(seq 100); do [ -s "$tmp/$mode.port" ] && break; sleep 0.05; done
  p=$(cat "$tmp/$mode.port")
  a=$(timeout 20 "$py" "$tmp/cli.py" "$p" $mode 2>&1)
  b=$(LLMGUARD_DEBUG=1 timeout 20 "$run" "$py" "$tmp/cli.py" "$p" $mode 2>"$tmp/$mode.dbg")
  if [ "$a" == "$b" ] && [ -n "$a" ]; then ok "non-HTTP ($mode) passes untouched"; else
    fail "non-HTTP ($mode): '$a' vs '$b'"; tail -5 "$tmp/$mode.dbg"; fi
  grep -q "track fd" "$tmp/$mode.dbg" && grep -q "untrack fd" "$tmp/$mode.dbg" \
    && ok "non-HTTP ($mode) was tracked, then dropped" || fail "non-HTTP ($mode): no track/untrack in debug log"
done
finish
