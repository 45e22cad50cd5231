#!/usr/bin/env python3
"""Test helper: plays systemd's part in socket activation.  Binds the
datagram socket (PassCredentials like the .socket unit), then runs the
collector with it as fd 3 and LISTEN_FDS=1 / LISTEN_PID=<its pid>, and
keeps holding the socket itself, so datagrams queue while no collector
runs.  Usage: collector_activate.py SOCKET CONTROL_FIFO COLLECTORD [ARGS...]
Reads commands from the fifo: "start", "stop", "quit"."""
import os, signal, socket, sys
path, fifo, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o600)
child = None
def start():
    global child
    pid = os.fork()
    if pid == 0:
        os.dup2(s.fileno(), 3)
        os.set_inheritable(3, True)
        env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
        os.execve(argv[0], argv, env)
    child = pid
for cmd in open(fifo):
    cmd = cmd.strip()
    if cmd == "start":
        start()
    elif cmd == "stop" and child:
        os.kill(child, signal.SIGTERM); os.waitpid(child, 0); child = None
    elif cmd == "quit":
        break
    print("done", cmd, flush=True)
if child:
    os.kill(child, signal.SIGTERM); os.waitpid(child, 0)
