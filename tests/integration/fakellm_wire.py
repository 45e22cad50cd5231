#!/usr/bin/python3
"""Wire-level checks for llmguard-fakellm.

Usage: fakellm_wire.py PORT MODE [RECORD_FILE]
  MODE checks   run every framing check (server started with --split none)
  MODE digest   print one sha256 over the de-chunked bodies of a fixed list
                of requests (server started with --fixed-time and --seed),
                so the shell can compare split modes
  MODE splits   light checks that hold in every split mode, plus how many
                recv() calls one stream took (printed as "recvs N chunks M")

Standard library only: socket for raw framing (http.client de-chunks, which
hides exactly what we want to see) and http.client for keep-alive.
"""
import hashlib
import http.client
import json
import re
import socket
import sys
import time

HOST = "127.0.0.1"
PORT = int(sys.argv[1])
MODE = sys.argv[2]
RECORD = sys.argv[3] if len(sys.argv) > 3 else None
TIMEOUT = 10

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


# ---- a tiny raw HTTP/1.1 client -------------------------------------------

class Resp:
    pass


def read_response(sock, buf, method="POST"):
    """Read one response from sock; buf holds bytes already received.
    Returns (Resp, leftover bytes).  Records the framing as it went."""
    r = Resp()
    r.recvs = 0

    def more():
        nonlocal buf
        d = sock.recv(65536)
        r.recvs += 1
        if not d:
            raise EOFError("connection closed mid-response")
        buf += d

    while b"\r\n\r\n" not in buf:
        more()
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    r.status_line = lines[0]
    r.status = int(lines[0].split(" ")[1])
    r.headers = [tuple(l.split(": ", 1)) if ": " in l else (l.rstrip(":"), "")
                 for l in lines[1:]]
    r.h = {k.lower(): v for k, v in r.headers}
    r.chunks = []  # (size line as sent, data)
    if method == "HEAD" or r.status in (100, 204, 304):
        r.body = b""
        return r, buf
    if r.h.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                more()
            sizeline, buf = buf.split(b"\r\n", 1)
            size = int(sizeline, 16)
            while len(buf) < size + 2:
                more()
            data, crlf, buf = buf[:size], buf[size:size + 2], buf[size + 2:]
            if size == 0:
                check(crlf == b"\r\n", "terminator is 0 CRLF CRLF")
                break
            check(crlf == b"\r\n", "chunk data followed by CRLF")
            r.chunks.append((sizeline.decode(), data))
            body += data
        r.body = body
    elif "content-length" in r.h:
        n = int(r.h["content-length"])
        while len(buf) < n:
            more()
        r.body, buf = buf[:n], buf[n:]
    else:
        while True:
            try:
                more()
            except EOFError:
                break
        r.body, buf = buf, b""
    return r, buf


def connect():
    s = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw_req(method, path, body=None, extra=b""):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    req = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{PORT}\r\n".encode()
    if body is not None:
        req += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    req += extra + b"\r\n" + (body or b"")
    return req


def roundtrip(method, path, body=None, extra=b""):
    s = connect()
    try:
        s.sendall(raw_req(method, path, body, extra))
        r, _ = read_response(s, b"", method)
        return r
    finally:
        s.close()


def ndjson_lines(r):
    return [json.loads(l) for l in r.body.decode().splitlines() if l]


def sse_events(r):
    text = r.body.decode()
    check(text.endswith("\n\n"), "SSE body ends with a blank line")
    return [e for e in text.split("\n\n") if e]


DATE_RE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                     r"Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")
TS_RE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$')


def keys_of(raw_json_line):
    """Top-level keys in the order they appear on the wire."""
    return [k for k, _ in json.loads(raw_json_line, object_pairs_hook=lambda kv: kv)]


# ---- the checks ------------------------------------------------------------

def check_ollama_generate_stream():
    prompt = "Tell <me> a \"story\" & then\nstop. Unicode: caf\u00e9 \u2028 end"
    r = roundtrip("POST", "/api/generate", {"model": "llama3.2", "prompt": prompt})
    check(r.status_line == "HTTP/1.1 200 OK", "generate: status line")
    names = [k for k, _ in r.headers]
    check(names == ["Content-Type", "Date", "Transfer-Encoding"],
          f"generate: header order {names}")
    check(r.h.get("content-type") == "application/x-ndjson", "generate: x-ndjson")
    check(DATE_RE.match(r.h.get("date", "")) is not None, "generate: RFC 1123 Date")
    check(len(r.chunks) >= 3, "generate: several chunks")
    for sizeline, data in r.chunks:
        check(sizeline == "%x" % len(data), f"generate: chunk size line {sizeline!r} is lowercase "
              f"hex of its length {len(data)}")
        check(data.endswith(b"\n") and data.count(b"\n") == 1,
              "generate: exactly one JSON line per chunk")
        json.loads(data)
    objs = ndjson_lines(r)
    text = "".join(o["response"] for o in objs)
    check(text == prompt, f"generate: echo returns the prompt ({text!r})")
    raw = r.body
    check(b"\\u003c" in raw and b"\\u003e" in raw and b"\\u0026" in raw,
          "generate: Go escapes < > &")
    check(b"<" not in raw and b">" not in raw and b"&" not in raw, "generate: no raw < > &")
    check(b"\\u2028" in raw, "generate: U+2028 escaped")
    check(b"\xc3\xa9" in raw, "generate: UTF-8 kept raw")
    check(all(not o["done"] for o in objs[:-1]) and objs[-1]["done"] is True,
          "generate: done only on the last line")
    first = r.chunks[0][1].decode()
    check(keys_of(first) == ["model", "created_at", "response", "done"],
          f"generate: token field order {keys_of(first)}")
    last = r.chunks[-1][1].decode()
    check(keys_of(last) == ["model", "created_at", "response", "done", "done_reason", "context",
                            "total_duration", "load_duration", "prompt_eval_count",
                            "prompt_eval_duration", "eval_count", "eval_duration"],
          f"generate: final field order {keys_of(last)}")
    check(objs[-1]["response"] == "" and objs[-1]["done_reason"] == "stop",
          "generate: final has empty response, done_reason stop")
    check(all(TS_RE.match(o["created_at"]) for o in objs), "generate: created_at RFC3339Nano")
    # tokens are 1-4 characters or one word, and some split a word
    toks = [o["response"] for o in objs[:-1]]
    check(max(len(t) for t in toks) <= 13, "generate: tokens are short")
    check(any(t[-1:].isalpha() and nxt[:1].isalpha() for t, nxt in zip(toks, toks[1:])),
          "generate: some token boundary falls inside a word")


def check_ollama_chat():
    msgs = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": "What is 2+2? <b>bold</b>"}]
    r = roundtrip("POST", "/api/chat", {"model": "m", "messages": msgs})
    objs = ndjson_lines(r)
    check("".join(o["message"]["content"] for o in objs) == msgs[-1]["content"],
          "chat stream: echo of the last user message")
    check(keys_of(r.chunks[0][1].decode()) == ["model", "created_at", "message", "done"],
          "chat stream: token field order")
    check(keys_of(r.chunks[-1][1].decode())[:5] ==
          ["model", "created_at", "message", "done_reason", "done"],
          "chat stream: final field order (done_reason before done, as ChatResponse)")
    # non-streamed
    r = roundtrip("POST", "/api/chat", {"model": "m", "messages": msgs, "stream": False})
    names = [k for k, _ in r.headers]
    check(names == ["Content-Type", "Date", "Content-Length"], f"chat: header order {names}")
    check(r.h["content-type"] == "application/json; charset=utf-8", "chat: gin JSON type")
    check(int(r.h["content-length"]) == len(r.body), "chat: Content-Length matches")
    check(not r.body.endswith(b"\n"), "chat: gin c.JSON has no trailing newline")
    o = json.loads(r.body)
    check(o["message"] == {"role": "assistant", "content": msgs[-1]["content"]},
          "chat: non-stream content")
    check(o["done"] is True and o["done_reason"] == "stop", "chat: done")
    # array content parts (OpenAI style) are echoed as text
    r = roundtrip("POST", "/v1/chat/completions",
                  {"model": "m", "messages": [{"role": "user", "content": [
                      {"type": "text", "text": "part one"}]}]})
    check(json.loads(r.body)["choices"][0]["message"]["content"] == "part one",
          "openai: array content parts")


def check_large_nonstream_is_chunked():
    prompt = "x" * 3000
    r = roundtrip("POST", "/api/generate", {"model": "m", "prompt": prompt, "stream": False})
    check(r.h.get("transfer-encoding") == "chunked" and "content-length" not in r.h,
          "generate: a >2 KiB unflushed body is chunked, as Go does")
    check(json.loads(r.body)["response"] == prompt, "generate: large body intact")
    r = roundtrip("POST", "/api/generate", {"model": "m", "prompt": "hi", "stream": False})
    check("content-length" in r.h, "generate: small body gets Content-Length")


def check_openai():
    content = "Hello <there>, general Kenobi"
    req = {"model": "m", "stream": True, "messages": [{"role": "user", "content": content}]}
    r = roundtrip("POST", "/v1/chat/completions", req)
    names = [k for k, _ in r.headers]
    check(names == ["Content-Type", "Date", "Transfer-Encoding"], f"sse: header order {names}")
    check(r.h["content-type"] == "text/event-stream", "sse: content type")
    evs = sse_events(r)
    check(all(e.startswith("data: ") for e in evs), "sse: every event is data:")
    check(evs[-1] == "data: [DONE]", "sse: ends with [DONE]")
    objs = [json.loads(e[6:]) for e in evs[:-1]]
    check("".join(o["choices"][0]["delta"]["content"] for o in objs) == content,
          "sse: echo content")
    check(all(o["object"] == "chat.completion.chunk" and o["system_fingerprint"] == "fp_ollama"
              and re.match(r"^chatcmpl-\d+$", o["id"]) for o in objs), "sse: chunk shape")
    check(all(o["choices"][0]["finish_reason"] is None for o in objs[:-1]),
          "sse: finish_reason null before the end")
    check(objs[-1]["choices"][0]["finish_reason"] == "stop", "sse: final finish_reason stop")
    check(keys_of(evs[0][6:]) == ["id", "object", "created", "model", "system_fingerprint",
                                  "choices"], "sse: field order")
    check(b'"delta":{"role":"assistant","content":' in r.chunks[0][1], "sse: delta shape")
    for sizeline, data in r.chunks[:-1]:
        check(data.startswith(b"data: ") and data.endswith(b"\n\n") and data.count(b"data: ") == 1,
              "sse: one event per chunk before the end")
    check(r.chunks[-1][1].endswith(b"data: [DONE]\n\n") and r.chunks[-1][1].count(b"data: ") == 2,
          "sse: final event and [DONE] share the last chunk (Ollama's bufio)")
    # include_usage
    req["stream_options"] = {"include_usage": True}
    r = roundtrip("POST", "/v1/chat/completions", req)
    evs = sse_events(r)
    u = json.loads(evs[-2][6:])
    check(u["choices"] == [] and u["usage"]["completion_tokens"] > 0, "sse: usage chunk")
    # non-stream
    r = roundtrip("POST", "/v1/chat/completions", {"model": "m", "messages": req["messages"]})
    check(r.h["content-type"] == "application/json", "openai: json content type")
    check(int(r.h["content-length"]) == len(r.body) and r.body.endswith(b"}\n"),
          "openai: Content-Length body from json.Encoder (trailing newline)")
    o = json.loads(r.body)
    check(o["object"] == "chat.completion" and o["choices"][0]["message"]["content"] == content
          and o["choices"][0]["finish_reason"] == "stop" and o["usage"]["total_tokens"] > 0,
          "openai: completion shape")
    # legacy completions, streamed
    r = roundtrip("POST", "/v1/completions", {"model": "m", "prompt": "abc def", "stream": True})
    evs = sse_events(r)
    check(evs[-1] == "data: [DONE]", "completions: [DONE]")
    objs = [json.loads(e[6:]) for e in evs[:-1]]
    check("".join(o["choices"][0]["text"] for o in objs) == "abc def", "completions: echo")
    check(keys_of(evs[0][6:]) == ["id", "object", "created", "choices", "model",
                                  "system_fingerprint"], "completions: chunk field order")
    r = roundtrip("GET", "/v1/models")
    check(json.loads(r.body)["object"] == "list", "models: list")


def check_llama():
    r = roundtrip("POST", "/completion", {"prompt": "Building a website <html>", "stream": True})
    check(r.h.get("server") == "llama.cpp" and r.h["content-type"] == "text/event-stream",
          "llama: headers")
    evs = sse_events(r)
    check(all(e.startswith("data: ") for e in evs), "llama: data events")
    check("data: [DONE]" not in evs, "llama: no [DONE]")
    objs = [json.loads(e[6:]) for e in evs]
    check(objs[-1]["stop"] is True and all(o["stop"] is False for o in objs[:-1]),
          "llama: final event has stop true")
    check("".join(o["content"] for o in objs) == "Building a website <html>", "llama: echo")
    check(b"<html>" in r.body, "llama: nlohmann does not escape <")
    r = roundtrip("POST", "/completion", {"prompt": "hi"})
    o = json.loads(r.body)
    check(o["content"] == "hi" and o["stop"] is True and int(r.h["content-length"]) == len(r.body),
          "llama: non-stream")
    r = roundtrip("GET", "/health")
    check(r.status == 200 and json.loads(r.body) == {"status": "ok"}, "llama: health")


def check_misc():
    r = roundtrip("GET", "/api/tags")
    check(json.loads(r.body)["models"][0]["details"]["format"] == "gguf", "tags")
    r = roundtrip("GET", "/api/version")
    check("version" in json.loads(r.body), "version")
    r = roundtrip("POST", "/api/embed", {"model": "m", "input": ["a", "b"]})
    e1 = json.loads(r.body)
    r = roundtrip("POST", "/api/embed", {"model": "m", "input": ["a", "b"]})
    check(json.loads(r.body) == e1 and len(e1["embeddings"]) == 2, "embed: deterministic")
    r = roundtrip("GET", "/")
    check(r.body == b"Ollama is running", "root")
    # HEAD: same headers, no body, connection still usable
    s = connect()
    s.sendall(raw_req("HEAD", "/api/version") + raw_req("GET", "/api/version"))
    rh, rest = read_response(s, b"", "HEAD")
    rg, rest = read_response(s, rest, "GET")
    check(rh.status == 200 and rh.h.get("content-length") == rg.h.get("content-length") and
          rest == b"" and b"version" in rg.body, "HEAD has headers only")
    s.close()
    # 404 shapes
    r = roundtrip("POST", "/api/nothing", {"model": "m"})
    check(r.status == 404 and json.loads(r.body) == {"error": "404 page not found"},
          "404: ollama shape")
    r = roundtrip("GET", "/v1/nothing")
    e = json.loads(r.body)["error"]
    check(r.status == 404 and e["type"] == "not_found_error" and "message" in e,
          "404: openai shape")
    r = roundtrip("GET", "/nothing")
    check(r.status == 404 and json.loads(r.body)["error"]["code"] == 404, "404: llama.cpp shape")
    # model errors
    r = roundtrip("POST", "/api/chat", {"model": "fail-notfound", "messages": []})
    check(r.status == 404 and "not found" in json.loads(r.body)["error"], "model not found")
    r = roundtrip("POST", "/api/generate", {"prompt": "x"})
    check(r.status == 400 and json.loads(r.body)["error"] == "model is required", "model required")
    r = roundtrip("POST", "/api/generate", b"{not json")
    check(r.status == 400 and "error" in json.loads(r.body), "bad JSON is a 400 {error}")
    r = roundtrip("POST", "/api/generate", {"model": "fail-midstream",
                                            "prompt": "one two three four five six"})
    check(r.status == 200 and json.loads(r.chunks[-1][1]) .get("error") is not None,
          "mid-stream error is one more NDJSON line")
    check(r.chunks[-1][1].endswith(b"}\n"), "mid-stream error line ends with newline")
    # invalid UTF-8 becomes \ufffd in Go's encoder
    body = b'{"model":"m","prompt":"ab\xff cd","stream":false}'
    r = roundtrip("POST", "/api/generate", body)
    check(b"\\ufffd" in r.body, "invalid UTF-8 escaped as \\ufffd")


def check_keepalive_and_pipelining():
    c = http.client.HTTPConnection(HOST, PORT, timeout=TIMEOUT)
    c.request("GET", "/api/tags")
    r1 = c.getresponse()
    b1 = r1.read()
    sock1 = c.sock
    c.request("POST", "/api/generate", body=json.dumps({"model": "m", "prompt": "second one"}),
              headers={"Content-Type": "application/json"})
    r2 = c.getresponse()
    b2 = r2.read()
    check(r1.status == 200 and json.loads(b1)["models"], "keep-alive: first response")
    check(c.sock is sock1 and sock1 is not None, "keep-alive: same socket reused")
    text = "".join(json.loads(l)["response"] for l in b2.decode().splitlines())
    check(text == "second one", "keep-alive: second response (chunked) de-chunked by http.client")
    c.close()
    # two pipelined requests in one send, the second with a chunked body
    s = connect()
    body = b'{"model":"m","prompt":"piped","stream":false}'
    chunked = (b"POST /api/generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"5\r\n" + body[:5] + b"\r\n" + b"%x\r\n" % (len(body) - 5) + body[5:] + b"\r\n0\r\n\r\n")
    s.sendall(raw_req("GET", "/api/version") + chunked)
    ra, rest = read_response(s, b"")
    rb, rest = read_response(s, rest, "POST")
    check(ra.status == 200 and "version" in json.loads(ra.body), "pipelining: first")
    check(json.loads(rb.body)["response"] == "piped", "pipelining: chunked request body decoded")
    # Connection: close is honoured
    s.sendall(raw_req("GET", "/api/version", None, b"Connection: close\r\n"))
    rc, rest = read_response(s, rest, "GET")
    check(rc.h.get("connection") == "close", "Connection: close echoed")
    s.settimeout(3)
    check(s.recv(10) == b"", "server closes after Connection: close")
    s.close()
    # Expect: 100-continue
    s = connect()
    body = b'{"model":"m","prompt":"cont","stream":false}'
    s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body))
    r100, rest = read_response(s, b"", "HEAD")
    check(r100.status == 100, "Expect: 100-continue answered")
    s.sendall(body)
    r, _ = read_response(s, rest)
    check(json.loads(r.body)["response"] == "cont", "body after 100-continue")
    s.close()


def check_garbage():
    cases = [b"\x00\x01\x02garbage\r\n\r\n",
             b"GET / HTTP/9.9\r\n\r\n",
             b"GET /api/tags HTTP/1.1\r\nBad Header\r\n\r\n",
             b"POST /api/chat HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
             b"POST /api/chat HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
             b"POST /api/chat HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
             b"POST /api/chat HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"]
    for g in cases:
        s = connect()
        s.sendall(g)
        r, _ = read_response(s, b"", "GET")
        check(r.status == 400 and r.h.get("connection") == "close", f"garbage {g[:20]!r} -> 400")
        s.settimeout(3)
        try:
            check(s.recv(100) == b"", "garbage: connection closed")
        except ConnectionResetError:
            pass
        s.close()
    # random junk, some of it shaped like HTTP: the server answers or closes
    import random
    rnd = random.Random(1234)
    pieces = [b"GET ", b"POST ", b"/api/chat", b" HTTP/1.1\r\n", b"Content-Length: ",
              b"Transfer-Encoding: chunked\r\n", b"\r\n", b"\n", b"ffffffffffffffffff\r\n",
              b"0\r\n\r\n", b"{\"model\":\"m\"}", b"\x00", b"\xff\xfe", b":", b" "]
    for _ in range(150):
        junk = b"".join(rnd.choice(pieces) if rnd.random() < 0.7 else
                        bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40)))
                        for _ in range(rnd.randrange(1, 12)))
        s = connect()
        s.settimeout(5)
        try:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        s.close()
    # a request dribbled in one byte at a time
    s = connect()
    for b in raw_req("POST", "/api/generate", {"model": "m", "prompt": "drip", "stream": False}):
        s.send(bytes([b]))
        time.sleep(0.001)
    r, _ = read_response(s, b"")
    check(json.loads(r.body)["response"] == "drip", "byte-at-a-time request")
    s.close()
    # oversized header section
    s = connect()
    try:
        s.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
        r, _ = read_response(s, b"", "GET")
        check(r.status == 431, "huge header -> 431")
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.close()
    # client that vanishes mid-stream (reset)
    s = connect()
    s.sendall(raw_req("POST", "/api/generate", {"model": "m", "prompt": "word " * 200}))
    s.recv(100)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    time.sleep(0.2)
    r = roundtrip("GET", "/api/version")
    check(r.status == 200, "server alive after garbage and resets")


def check_record():
    if not RECORD:
        return
    marker = "record-me-%d" % time.time_ns()
    roundtrip("POST", "/api/chat", b'{"model":"m",\n"messages":[{"role":"user","content":"' +
              marker.encode() + b'"}],"stream":false}')
    lines = open(RECORD, "rb").read().splitlines()
    hit = [l for l in lines if marker.encode() in l]
    check(len(hit) == 1, "record: the body is one line in the record file")
    if hit:
        check(json.loads(hit[0])["messages"][0]["content"] == marker, "record: body is JSON")


DIGEST_REQS = [
    ("POST", "/api/generate", {"model": "m", "prompt": "The quick <brown> fox jumps & runs " * 20}),
    ("POST", "/api/chat", {"model": "m", "messages": [{"role": "user", "content": "hi \u2028 there " * 30}]}),
    ("POST", "/api/chat", {"model": "m", "stream": False, "messages": [{"role": "user", "content": "z" * 2100}]}),
    ("POST", "/v1/chat/completions", {"model": "m", "stream": True, "messages": [{"role": "user", "content": "stream me please " * 10}]}),
    ("POST", "/v1/completions", {"model": "m", "stream": True, "prompt": "legacy completion text"}),
    ("POST", "/completion", {"stream": True, "prompt": "llama stream text here " * 5}),
    ("GET", "/api/tags", None),
]


def digest():
    h = hashlib.sha256()
    s = connect()
    rest = b""
    for method, path, body in DIGEST_REQS:
        s.sendall(raw_req(method, path, body))
        r, rest = read_response(s, rest, method)
        h.update(b"%d\n" % r.status)
        h.update(re.sub(rb"Date: [^\r]*", b"", r.body))
    s.close()
    print(h.hexdigest())


def splits():
    s = connect()
    s.sendall(raw_req("POST", "/api/generate", {"model": "m", "prompt": "split me " * 40}))
    r, _ = read_response(s, b"")
    s.close()
    text = "".join(o["response"] for o in ndjson_lines(r))
    check(text == "split me " * 40, "splits: echo intact")
    print("recvs %d chunks %d" % (r.recvs, len(r.chunks)))


if MODE == "checks":
    for f in (check_ollama_generate_stream, check_ollama_chat, check_large_nonstream_is_chunked,
              check_openai, check_llama, check_misc, check_keepalive_and_pipelining,
              check_garbage, check_record):
        try:
            f()
        except Exception as e:  # a crash in one group must not hide the others
            failures.append(f"{f.__name__}: {type(e).__name__}: {e}")
            print("FAIL:", f.__name__, repr(e), file=sys.stderr)
elif MODE == "digest":
    digest()
elif MODE == "splits":
    splits()
else:
    sys.exit("unknown mode " + MODE)

if failures:
    print("%d check(s) failed" % len(failures), file=sys.stderr)
    sys.exit(1)
