#!/usr/bin/python3
"""One request from a real Python HTTP client, for tests/integration/test_clients.sh.

usage: clients_py.py LIB API STREAM PORT PROMPT
  LIB     urllib | httpclient | requests  (requests is Debian's python3-requests:
          run this with /usr/bin/python3, not a pyenv python)
  API     ollama-generate | ollama-chat | openai-chat
  STREAM  0 | 1
  text    clients_py.py text FILE  prints the answer text found in a
          client's output (NDJSON, SSE or one JSON object), no newline.

Stdout gets "status N" then the response body exactly as the client
library hands it to the program (de-chunked), so two runs can be compared
byte for byte.  Stderr gets "elapsed_ms X" (request start to last byte)
and nothing else unless something fails.  Exit 0 whenever a response
arrived, whatever its status; 1 on a transport error.
"""
import json
import sys
import time

PATHS = {
    "ollama-generate": "/api/generate",
    "ollama-chat": "/api/chat",
    "openai-chat": "/v1/chat/completions",
}


def body_for(api, stream, prompt):
    if api == "ollama-generate":
        b = {"model": "m", "prompt": prompt, "stream": stream}
    else:
        b = {"model": "m", "stream": stream,
             "messages": [{"role": "system", "content": "be brief"},
                          {"role": "user", "content": prompt}]}
    return json.dumps(b).encode()


def run_urllib(url, data, out):
    import urllib.request
    import urllib.error
    req = urllib.request.Request(url, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        resp = urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError as e:  # 4xx/5xx: the body is still there
        resp = e
    out.write(b"status %d\n" % resp.status)
    while True:
        line = resp.readline()  # token by token for a stream
        if not line:
            break
        out.write(line)
        out.flush()


def run_httpclient(port, path, data, out):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, body=data,
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    out.write(b"status %d\n" % resp.status)
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        out.write(chunk)
        out.flush()
    conn.close()


def run_requests(url, data, out):
    import requests
    with requests.Session() as s:
        r = s.post(url, data=data, headers={"Content-Type": "application/json"},
                   stream=True, timeout=10)
        out.write(b"status %d\n" % r.status_code)
        for chunk in r.iter_content(chunk_size=None):
            out.write(chunk)
            out.flush()


def texts(obj):
    """The generated text in one event object, whatever the API."""
    if not isinstance(obj, dict):
        return ""
    if isinstance(obj.get("response"), str):
        return obj["response"]
    msg = obj.get("message")
    if isinstance(msg, dict) and isinstance(msg.get("content"), str):
        return msg["content"]
    t = ""
    for c in obj.get("choices") or []:
        d = c.get("delta") or c.get("message") or {}
        if isinstance(d.get("content"), str):
            t += d["content"]
        elif isinstance(c.get("text"), str):
            t += c["text"]
    if not t and isinstance(obj.get("content"), str):
        t = obj["content"]
    return t


def text_of(path):
    raw = open(path, "rb").read().decode("utf-8", "replace")
    out = []
    for line in raw.split("\n"):
        line = line.strip()
        if line.startswith("status "):
            continue
        if line.startswith("data: "):
            line = line[6:]
        if not line.startswith("{"):
            continue
        try:
            out.append(texts(json.loads(line)))
        except ValueError:
            pass
    sys.stdout.write("".join(out))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "text":
        text_of(sys.argv[2])
        return 0
    if len(sys.argv) != 6:
        sys.stderr.write(__doc__)
        return 2
    lib, api, stream, port, prompt = sys.argv[1:]
    stream = stream == "1"
    path = PATHS[api]
    url = "http://127.0.0.1:%s%s" % (port, path)
    data = body_for(api, stream, prompt)
    out = sys.stdout.buffer
    # Imports before the clock starts: module loading is not request latency.
    import http.client  # noqa: F401
    import urllib.request  # noqa: F401
    import urllib.error  # noqa: F401
    if lib == "requests":
        import requests  # noqa: F401
    t0 = time.monotonic()
    try:
        if lib == "urllib":
            run_urllib(url, data, out)
        elif lib == "httpclient":
            run_httpclient(int(port), path, data, out)
        elif lib == "requests":
            run_requests(url, data, out)
        else:
            sys.stderr.write("unknown LIB %s\n" % lib)
            return 2
    except Exception as e:  # a transport error is a test failure, say which
        sys.stderr.write("error %s: %r\n" % (type(e).__name__, e))
        return 1
    sys.stderr.write("elapsed_ms %.1f\n" % ((time.monotonic() - t0) * 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
