#!/usr/bin/env bash
# Socket activation as systemd does it (LISTEN_FDS/LISTEN_PID, fd 3): the
# collector uses the inherited socket, does not remove it on stop, and the
# events queued while it was stopped are stored by the next instance.
source "$(dirname "$0")/collector_lib.sh"
mkdir -p "$T/run"; chmod 700 "$T/run"
mkfifo "$T/ctl"
python3 "$LG_SRC/tests/integration/collector_activate.py" "$LLMGUARD_COLLECTOR" "$T/ctl" \
  "$COLLECTORD" --fsync-interval 0 >"$T/act.out" 2>&1 & apid=$!; EXTRA_PIDS+=($apid)
exec 7>"$T/ctl"
echo start >&7
wait_for grep -q '"socket_activated":[[:space:]]*true' "$LLMGUARD_LOG_DIR/collectord.status"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.sendto(b"{\"v\":1,\"id\":\"act-1\"}", sys.argv[1])' "$LLMGUARD_COLLECTOR"
wait_for grep -q act-1 "$LLMGUARD_LOG_DIR/events.jsonl"
echo stop >&7
wait_for grep -q 'done stop' "$T/act.out"
[ -S "$LLMGUARD_COLLECTOR" ] || fail "socket removed although systemd owns it"
# queued in the held socket while no collector runs (the queue holds 10)
python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)
for i in range(5): s.sendto(b"{\"v\":1,\"id\":\"queued-%d\"}" % i, sys.argv[1])' "$LLMGUARD_COLLECTOR"
echo start >&7
wait_for python3 -c 'import sys; sys.exit(open(sys.argv[1]).read().count("queued-") != 5)' "$LLMGUARD_LOG_DIR/events.jsonl"
[ ! -e "$LLMGUARD_COLLECTOR.keeper" ] || fail "keeper started under socket activation"
echo quit >&7
exec 7>&-
wait $apid
echo ok
