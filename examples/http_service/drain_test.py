#!/usr/bin/env python3
"""Runs example_http_service under load against the test PostgreSQL, sends SIGTERM, and checks the drain.

    drain_test.py PATH/TO/example_http_service

Needs the pg_server fixture's facts in the environment (tests/support/pg/with-env.sh):
CONNPOOL_PG_CONNINFO (TCP, scram-sha-256), CONNPOOL_PG_ADMIN_CONNINFO and CONNPOOL_PG_BIN.

Case 1, a drain within the deadline, asserts:
  - no request in flight at the signal fails: slow /query requests that the server shows running
    when SIGTERM is sent, slow ones still waiting for a pooled connection then, and every load
    request that got a connection, are answered 200 with the right body;
  - new connections are refused once the service says it is draining;
  - the process exits 0 (the service exits 1 if its deadline passed) within the deadline;
  - afterwards the server shows no connection with the service's application_name.
Case 2, a request longer than the deadline: the process exits 1, not 0, and not later than
the deadline allows.

The bounds below are limits on waits for state, never expectations of speed.
"""
import http.client
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time

service_path = sys.argv[1]
pg_bin = os.environ["CONNPOOL_PG_BIN"]
admin = os.environ["CONNPOOL_PG_ADMIN_CONNINFO"]
conninfo = os.environ["CONNPOOL_PG_CONNINFO"]

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def admin_scalar(sql):
    out = subprocess.run([os.path.join(pg_bin, "psql"), "-X", "-A", "-t", "-d", admin, "-c", sql],
                         check=True, capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def backends(app, extra=""):
    return int(admin_scalar(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}' {extra}"))


def eventually(pred, limit):
    end = time.monotonic() + limit
    while True:
        if pred():
            return True
        if time.monotonic() >= end:
            return pred()
        time.sleep(0.02)


class service:
    def __init__(self, app, deadline_ms, pool_size=4):
        self.app = app
        self.proc = subprocess.Popen(
            [service_path, "--address", "127.0.0.1", "--port", "0", "--conninfo", conninfo,
             "--app-name", app, "--pool-size", str(pool_size), "--drain-deadline-ms", str(deadline_ms)],
            stdout=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.expect("listening on ", 15)
        self.port = int(first.rsplit(":", 1)[1])

    def _read(self):
        for line in self.proc.stdout:
            print("service: " + line.rstrip(), flush=True)
            self.lines.put(line.rstrip())
        self.lines.put(None)

    def expect(self, prefix, limit):
        end = time.monotonic() + limit
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"service said no '{prefix}' within {limit} s")
            if line is None:
                raise RuntimeError(f"service exited before saying '{prefix}'")
            if line.startswith(prefix):
                return line

    def get(self, path, timeout=30):
        """(status, body) of GET path on a new connection; raises on any transport failure."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("GET", path, headers={"Connection": "close"})
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()


def connect_refused(port):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


def drain_within_deadline():
    print("--- case 1: SIGTERM under load, drain within the deadline", flush=True)
    app = f"cpt_http_{os.getpid()}_{random.randrange(100000)}"
    deadline_ms = 8000
    svc = service(app, deadline_ms)
    check(svc.get("/health") == (200, "ok\n"), "/health answers 200 before the signal")
    check(svc.get("/query?n=21") == (200, "42\n"), "/query answers through the pool")

    signalled = threading.Event()
    results = []  # (kind, detail) from every request
    lock = threading.Lock()

    def record(kind, detail):
        with lock:
            results.append((kind, detail))

    slow_results = []

    def slow(i):
        try:
            slow_results.append(svc.get(f"/query?n={i}&sleep_ms=1500"))
        except Exception as e:  # a transport failure of an in-flight request
            slow_results.append(("error", repr(e)))

    stop = threading.Event()

    def load(t):
        i = 0
        while not stop.is_set():
            i += 1
            n = t * 100000 + i
            sent_before_signal = not signalled.is_set()
            try:
                c = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=30)
                c.connect()
            except ConnectionRefusedError:
                record("refused" if signalled.is_set() else "refused before the signal", n)
                if signalled.is_set():
                    return
                continue
            try:
                c.request("GET", f"/query?n={n}", headers={"Connection": "close"})
                r = c.getresponse()
                body = r.read().decode()
                if (r.status, body) == (200, f"{2 * n}\n"):
                    record("ok", n)
                else:
                    record("bad answer", (n, r.status, body))
            except Exception as e:
                # It had a connection: the service accepted it, so this request was in flight.
                record("failed in flight", (n, sent_before_signal, repr(e)))
            finally:
                c.close()
            time.sleep(0.005)

    # Six slow requests on a pool of four: four run on the server and two wait for a connection
    # when the signal comes. Both kinds are in flight; a service that closed its pool at the
    # signal would fail the two that wait.
    slow_threads = [threading.Thread(target=slow, args=(i,)) for i in range(6)]
    for t in slow_threads:
        t.start()
    load_threads = [threading.Thread(target=load, args=(t,)) for t in range(4)]
    for t in load_threads:
        t.start()
    running = eventually(lambda: backends(app, "AND state = 'active' AND query LIKE '%pg_sleep%'") >= 4, 15)
    check(running, "four slow requests are running on the server before the signal")

    def waiting():
        status, body = svc.get("/stats")
        fields = dict(kv.split("=") for kv in body.split())
        return status == 200 and int(fields["pool_waiting"]) >= 2

    check(eventually(waiting, 15), "and at least two wait for a connection")
    time.sleep(0.2)  # let the load run alongside them

    t0 = time.monotonic()
    svc.proc.send_signal(signal.SIGTERM)
    signalled.set()
    svc.expect("draining", 10)
    refused = [connect_refused(svc.port) for _ in range(5)]
    check(all(refused), "new connections are refused after the signal")

    for t in slow_threads:
        t.join(30)
    stop.set()
    for t in load_threads:
        t.join(30)
    try:
        code = svc.proc.wait(timeout=deadline_ms / 1000 + 10)
    except subprocess.TimeoutExpired:
        svc.proc.kill()
        code = None
    elapsed = time.monotonic() - t0

    check(len(slow_results) == 6 and all(r[0] == 200 for r in slow_results),
          f"every slow request in flight at the signal was answered 200: {slow_results}")
    check(sorted(r[1] for r in slow_results) == sorted(f"{2 * i}\n" for i in range(6)), "with the right bodies")
    kinds = {}
    for kind, _ in results:
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"load requests: {kinds}", flush=True)
    bad = [r for r in results if r[0] not in ("ok", "refused")]
    check(not bad, f"no load request failed once it had a connection: {bad[:5]}")
    check(kinds.get("ok", 0) > 0, "the load generator got answers")
    check(code == 0, f"the service exits 0 after the drain (exit status {code})")
    check(elapsed < deadline_ms / 1000 + 2, f"and within the deadline of {deadline_ms} ms (took {elapsed:.1f} s)")
    check(eventually(lambda: backends(app) == 0, 10), "the server shows 0 connections from the service afterwards")


def deadline_passed():
    print("--- case 2: a request longer than the deadline", flush=True)
    app = f"cpt_http_late_{os.getpid()}_{random.randrange(100000)}"
    deadline_ms = 1000
    svc = service(app, deadline_ms, pool_size=2)
    out = []
    t = threading.Thread(target=lambda: out.append(_try(lambda: svc.get("/query?n=1&sleep_ms=8000"))))
    t.start()
    check(eventually(lambda: backends(app, "AND state = 'active' AND query LIKE '%pg_sleep%'") >= 1, 15),
          "the long request is running before the signal")
    t0 = time.monotonic()
    svc.proc.send_signal(signal.SIGTERM)
    try:
        code = svc.proc.wait(timeout=deadline_ms / 1000 + 10)
    except subprocess.TimeoutExpired:
        svc.proc.kill()
        code = None
    elapsed = time.monotonic() - t0
    t.join(30)
    check(code == 1, f"the service exits 1 when its deadline passes with a request in flight (exit status {code})")
    check(elapsed < 6, f"and does not wait for the request to end (took {elapsed:.1f} s)")
    check(out and out[0][0] != 200, f"the cut request got no 200: {out}")
    # Its backend ends when pg_sleep does, when the server notices the closed socket: not waited for.


def _try(f):
    try:
        return f()
    except Exception as e:
        return ("error", repr(e))


drain_within_deadline()
deadline_passed()
if failures:
    print(f"{len(failures)} check(s) failed", flush=True)
    sys.exit(1)
print("all checks passed", flush=True)
