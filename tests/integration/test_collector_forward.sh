#!/usr/bin/env bash
# Forwarding to a real rsyslog (Debian's package) on loopback, over TCP
# (RFC 5424, octet-counting framing) and UDP.  rsyslog is stopped and
# restarted mid-run: what was backlogged arrives after the restart, and
# what did not fit the bounded backlog is counted as dropped, not lost
# silently.
source "$(dirname "$0")/collector_lib.sh"
command -v rsyslogd >/dev/null || { echo "SKIP: rsyslogd not installed"; exit 0; }
read -r TP UP < <(python3 -c 'import socket
a=socket.socket(); a.bind(("127.0.0.1",0)); b=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); b.bind(("127.0.0.1",0))
print(a.getsockname()[1], b.getsockname()[1])')
mkdir -p "$T/rs"
cat >"$T/rs/rsyslog.conf" <<CONF
global(workDirectory="$T/rs" maxMessageSize="128k")
module(load="imtcp")
module(load="imudp")
template(name="raw" type="string" string="%app-name% %procid% %msgid% %pri% %msg%\n")
ruleset(name="tcp") { action(type="omfile" file="$T/rs/tcp.log" template="raw") }
ruleset(name="udp") { action(type="omfile" file="$T/rs/udp.log" template="raw") }
input(type="imtcp" port="$TP" address="127.0.0.1" ruleset="tcp")
input(type="imudp" port="$UP" address="127.0.0.1" ruleset="udp")
CONF
RSPID=
start_rsyslog() {
  rm -f "$T/rs/pid"
  rsyslogd -n -f "$T/rs/rsyslog.conf" -i "$T/rs/pid" 2>>"$T/rs/err" & RSPID=$!; EXTRA_PIDS+=($RSPID)
  wait_for python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' "$TP" 2>/dev/null
}
stop_rsyslog() { kill -TERM "$RSPID"; wait "$RSPID" 2>/dev/null || true; RSPID=; }
count() { [ -e "$T/rs/$1.log" ] && grep -c "\"writer\":\"$2\"" "$T/rs/$1.log" || echo 0; }
have() { [ "$(count "$1" "$2")" -ge "$3" ]; }

start_rsyslog
start_collector --forward "syslog+tcp://127.0.0.1:$TP" --forward "syslog+udp://127.0.0.1:$UP" \
  --forward-backlog 500 --forward-backoff-max 300 --spool-interval 200

# phase 1: everything arrives on both transports
"$WRITER" p1 200 2000 >/dev/null
wait_for have tcp p1 200
wait_for have udp p1 200
line=$(grep -m1 '"writer":"p1"' "$T/rs/tcp.log")
echo "rsyslog got: ${line:0:160}..."
case $line in "llmguard "[0-9]*" allow 134 {\"v\":1,\"id\":"*) ;; *) fail "RFC 5424 fields not parsed by rsyslog: $line";; esac

# phase 2: rsyslog down; 800 events against a 500-event backlog.  First let
# the collector see rsyslog's kernel acknowledge everything (else the
# unacknowledged tail is, rightly, kept and sent again after the restart).
backlog_empty() { [ "$(status_field forward.0.backlog)" = 0 ]; }
wait_for backlog_empty
stop_rsyslog
sleep 0.5
"$WRITER" p2 800 4000 >/dev/null
wait_for python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["stored"] < 1000)' "$LLMGUARD_LOG_DIR/collectord.status"
sleep 1.2   # a status update after the last event
tcp_dropped=$(status_field forward.0.dropped)
tcp_backlog=$(status_field forward.0.backlog)
echo "while down: tcp backlog $tcp_backlog dropped $tcp_dropped; udp backlog $(status_field forward.1.backlog) dropped $(status_field forward.1.dropped)"
[ "$tcp_dropped" = 300 ] || fail "tcp drops not counted: $tcp_dropped"
[ "$tcp_backlog" = 500 ] || fail "tcp backlog $tcp_backlog"
"$COLLECTORD" --status | grep -q 'dropped 300, backlog 500, disconnected' || fail "--status forward line"

# phase 3: rsyslog back; the backlog drains, new events follow.  Wait for
# the drain before writing p3: until the collector has reconnected (its
# backoff) the backlog is full, and p3 events arriving then are dropped,
# correctly and counted — which is phase 2's test, not this one's.
start_rsyslog
wait_for backlog_empty
"$WRITER" p3 100 1000 >/dev/null
wait_for have tcp p3 100
wait_for have tcp p2 500
wait_for have udp p3 100
sleep 0.5
p2=$(grep '"writer":"p2"' "$T/rs/tcp.log" | grep -o '"id":"[^"]*"' | sort -u | wc -l)
echo "tcp: p1 $(count tcp p1) p2 $(count tcp p2) (unique $p2) p3 $(count tcp p3); udp: p1 $(count udp p1) p2 $(count udp p2) p3 $(count udp p3)"
[ $((p2 + tcp_dropped)) = 800 ] || fail "tcp: $p2 delivered + $tcp_dropped dropped != 800 (silent loss)"
# UDP is best effort by nature (a datagram to a stopped receiver, or one a
# busy receiver's buffer cannot take, vanishes without an error); what the
# collector itself could not hold is still counted.
udp_d=$(status_field forward.1.dropped)
[ "$udp_d" -gt 0 ] || fail "udp backlog overflow not counted"
[ "$(count udp p1)" = 200 ] && [ "$(count udp p3)" = 100 ] || fail "udp lost events while rsyslog was up"
[ "$(status_field forward.0.backlog)" = 0 ] || fail "backlog not drained"
stop_collector
stop_rsyslog
echo ok
