#!/usr/bin/env python3
"""http_probe.py -- the issue 18 probes against a shaken-collector binary, on 127.0.0.1:

    benches/http_probe.py [--collector PATH] [--uploads N] [--flood N] [--nofile N]

Starts the collector (a fresh database in a temporary folder, token "t") for each probe and
prints one line per figure:
  - N stalled unauthenticated uploads (16 MB declared, 4 MB sent each): RSS before and after;
  - a header trickled one byte every 0.3 s: when the server cuts it off (15 s at most);
  - SIGTERM while N uploads stall: how long until the process exits (15 s at most);
  - N idle connections under RLIMIT_NOFILE=nofile (the collector's own limit only): how long
    a /healthz probe waits for an answer or a refusal (8 s at most);
  - one 15 MB NDJSON line (an array of zeros) with --max-line-kb 16384: status, peak RSS.
Figures only: nothing is asserted (tests/http_hardening.rs asserts the behaviour). Pass an
older binary with --collector to compare. Default: the newer of target/release and
target/debug.
"""
import argparse
import os
import resource
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_binary():
    built = [os.path.join(ROOT, "target", profile, "shaken-collector")
             for profile in ("release", "debug")]
    built = [p for p in built if os.path.exists(p)]
    if not built:
        raise SystemExit("no shaken-collector built; run cargo build -p shaken-collector")
    return max(built, key=os.path.getmtime)


class Collector:
    def __init__(self, binary, workdir, extra=(), nofile=None):
        pre = None
        if nofile:
            pre = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        db = tempfile.mktemp(dir=workdir, suffix=".sqlite")
        self.p = subprocess.Popen(
            [binary, "--bind", "127.0.0.1:0", "--token", "t", "--db", db, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=pre)
        line = self.p.stdout.readline().decode()
        if not line.startswith("listening on "):
            self.p.wait()
            raise RuntimeError("collector did not start with %s" % " ".join(extra))
        self.port = int(line.strip().rsplit(":", 1)[1])

    def mem_mb(self, field):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) // 1024
        return -1

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port))

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def stalled_uploads(c, n):
    socks, lock = [], threading.Lock()

    def upload():
        s = c.connect()
        s.settimeout(3)
        try:
            s.sendall(b"POST /v1/ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 16000000\r\n\r\n")
            for _ in range(64):
                s.sendall(b"x" * 65536)
        except OSError:
            pass
        with lock:
            socks.append(s)

    threads = [threading.Thread(target=upload) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return socks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--collector", default=None)
    ap.add_argument("--uploads", type=int, default=20)
    ap.add_argument("--flood", type=int, default=150)
    ap.add_argument("--nofile", type=int, default=128)
    a = ap.parse_args()
    binary = a.collector or default_binary()
    work = tempfile.mkdtemp(prefix="http-probe-")
    print("collector:", binary)

    c = Collector(binary, work)
    before = c.mem_mb("VmRSS")
    socks = stalled_uploads(c, a.uploads)
    time.sleep(0.5)
    print("%d stalled unauthenticated uploads: RSS %d MB -> %d MB"
          % (a.uploads, before, c.mem_mb("VmRSS")))

    s = c.connect()
    s.settimeout(0.3)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
    t0, cut = time.time(), None
    while time.time() - t0 < 15:
        try:
            s.sendall(b"a")
            s.recv(100)
            cut = time.time() - t0
            break
        except socket.timeout:
            pass
        except OSError:
            cut = time.time() - t0
            break
    print("header trickled 1 byte / 0.3 s: cut off after %s"
          % ("%.1f s" % cut if cut else "more than 15 s"))

    c.p.send_signal(signal.SIGTERM)
    t0 = time.time()
    try:
        c.p.wait(15)
        print("SIGTERM with %d stalled uploads: exited after %.1f s"
              % (a.uploads, time.time() - t0))
    except subprocess.TimeoutExpired:
        print("SIGTERM with %d stalled uploads: still running after 15 s" % a.uploads)
    c.stop()
    for x in socks + [s]:
        x.close()

    c = Collector(binary, work, nofile=a.nofile)
    flood = [c.connect() for _ in range(a.flood)]
    time.sleep(0.5)
    probe = c.connect()
    probe.settimeout(8)
    probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    t0 = time.time()
    try:
        got = probe.recv(100)
        what = repr(got[:12]) if got else "closed"
    except OSError as e:
        what = type(e).__name__
    print("%d idle connections, ulimit -n %d: /healthz probe %s after %.2f s"
          % (a.flood, a.nofile, what, time.time() - t0))
    for x in flood + [probe]:
        x.close()
    c.stop()

    try:
        c = Collector(binary, work, extra=["--max-line-kb", "16384"])
    except RuntimeError:
        c = Collector(binary, work)  # a collector from before the line cap
    before = c.mem_mb("VmHWM")
    body = (b'{"schema":"shaken-sensor/call/v1","record_id":"x","pad":['
            + b"0," * 7_500_000 + b"0]}\n")
    req = urllib.request.Request("http://127.0.0.1:%d/v1/ingest" % c.port, data=body,
                                 headers={"Authorization": "Bearer t"})
    t0 = time.time()
    try:
        status = urllib.request.urlopen(req, timeout=60).status
    except urllib.error.HTTPError as e:
        status = e.code
    print("one 15 MB line: %d, peak RSS %d MB -> %d MB, %.1f s"
          % (status, before, c.mem_mb("VmHWM"), time.time() - t0))
    c.stop()


if __name__ == "__main__":
    main()
