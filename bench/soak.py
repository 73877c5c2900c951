#!/usr/bin/env python3
"""Soak run (`bench/soak`, 10 minutes by default): mixed traffic through etag-proxy in front of the bundled demo
API, restarted every `--restart-every` seconds, while the proxy's RSS and open descriptors are sampled.

Traffic, from `--clients` threads, each request picked at random: GET, conditional GET (If-None-Match with the
tag last seen), checked PUT (If-Match with the tag last seen), a malformed request (must be 400), a request
abandoned halfway, an answer abandoned unread, and a connect-and-drop. Every answer is counted by kind and
status; a status the proxy must never send for that kind (a 5xx other than 502/503/504 while the upstream
restarts, a 400 missing for a malformed request) is an error.

It fails (exit 1) when the proxy died, when an error was seen, or when memory or descriptors grew without bound:
after the traffic stops and the pools settle, the descriptors must be back within the upstream pool's size of
the level after warm-up, and the RSS of the last quarter of the run within 32 MiB of the second quarter's.
Everything on 127.0.0.1; every process stopped by PID.
"""
import argparse, http.client, json, os, random, shutil, signal, socket, subprocess, sys, tempfile, threading, time

from bench import stop, wait_port

PROXY, ADMIN, DEMO = 18401, 18402, 18400


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.by = {}
        self.errors = []

    def add(self, kind, status, ok=True):
        with self.lock:
            self.by[(kind, status)] = self.by.get((kind, status), 0) + 1
            if not ok and len(self.errors) < 20:
                self.errors.append(f"{kind}: {status}")


def client(stopping, counts, persons):
    conn = None
    tags = {}
    while not stopping.is_set():
        kind = random.choices(["get", "conditional", "put", "bad", "abort_request", "abort_response", "drop"],
                              [40, 30, 12, 6, 4, 4, 4])[0]
        pid = random.randint(1, persons)
        path = f"/persons/{pid}"
        try:
            if kind in ("get", "conditional", "put"):
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", PROXY, timeout=10)
                headers = {}
                body = None
                method = "GET"
                if kind == "conditional" and path in tags:
                    headers["If-None-Match"] = tags[path]
                if kind == "put":
                    method = "PUT"
                    headers["If-Match"] = tags.get(path, '"none"')
                    headers["Content-Type"] = "application/json"
                    body = json.dumps({"person_id": str(pid), "person_name": f"soak-{random.random()}"})
                conn.request(method, path, body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                if r.getheader("ETag"):
                    tags[path] = r.getheader("ETag")
                # 502/503/504 are what an upstream being restarted gets; 404 an id the restarted demo forgot.
                allowed = {200, 201, 204, 304, 404, 412, 428, 502, 503, 504}
                counts.add(kind, r.status, r.status in allowed)
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            elif kind == "bad":
                s = socket.create_connection(("127.0.0.1", PROXY), timeout=10)
                s.sendall(b"GET /persons HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n")
                status = int(s.recv(64).split(b" ")[1])
                s.close()
                counts.add(kind, status, status == 400)
            elif kind == "abort_request":
                s = socket.create_connection(("127.0.0.1", PROXY), timeout=10)
                s.sendall(b"PUT /persons/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{\"person")
                s.close()
                counts.add(kind, "sent")
            elif kind == "abort_response":
                s = socket.create_connection(("127.0.0.1", PROXY), timeout=10)
                s.sendall(b"GET /persons HTTP/1.1\r\nHost: a\r\n\r\n")
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()  # a reset, the answer unread
                counts.add(kind, "sent")
            else:
                s = socket.create_connection(("127.0.0.1", PROXY), timeout=10)
                s.close()
                counts.add(kind, "sent")
        except (OSError, http.client.HTTPException, ValueError, IndexError) as e:
            # The proxy may close a keep-alive connection between requests; anything else is counted.
            counts.add(kind, type(e).__name__)
            if conn is not None:
                conn.close()
                conn = None
    if conn is not None:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--restart-every", type=float, default=30, help="seconds between upstream restarts")
    ap.add_argument("--sample-every", type=float, default=5)
    ap.add_argument("--persons", type=int, default=50)
    ap.add_argument("--binary", default=".build/release/etag-proxy")
    ap.add_argument("--demo", default=".build/release/etag-demo-api")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="etag-soak-")
    region = "etag-proxy-soak"
    with open(f"{d}/p.yaml", "w") as f:
        f.write(f"listen: 127.0.0.1:{PROXY}\nupstream: http://127.0.0.1:{DEMO}\nworkers: 2\naccess_log: off\n"
                f"admin:\n  listen: 127.0.0.1:{ADMIN}\ncache:\n  name: {region}\n  size: 4MiB\n"
                f"timeouts:\n  client_body: 2s\n  client_header: 2s\n")

    def start_demo():
        p = subprocess.Popen([a.demo, "--listen", f"127.0.0.1:{DEMO}"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        wait_port(DEMO)
        for i in range(1, a.persons + 1):  # the demo starts empty: create the records the clients edit
            c = http.client.HTTPConnection("127.0.0.1", DEMO, timeout=5)
            c.request("POST", "/persons", body=json.dumps({"person_id": str(i), "person_name": "p"}),
                      headers={"Content-Type": "application/json"})
            c.getresponse().read()
            c.close()
        return p

    subprocess.run(["rm", "-f", f"/dev/shm/{region}"])
    demo = start_demo()
    proxy = subprocess.Popen([a.binary, "--config", f"{d}/p.yaml"], stdout=subprocess.DEVNULL,
                             stderr=open(f"{d}/proxy.log", "w"))
    stopping = threading.Event()
    counts = Counts()
    samples = []
    restarts = 0
    try:
        wait_port(PROXY)
        threads = [threading.Thread(target=client, args=(stopping, counts, a.persons)) for _ in range(a.clients)]
        for t in threads:
            t.start()
        start = time.time()
        end = start + a.minutes * 60
        next_restart = start + a.restart_every
        while time.time() < end:
            time.sleep(a.sample_every)
            if proxy.poll() is not None:
                break
            samples.append((time.time() - start, rss(proxy.pid), fds(proxy.pid)))
            print(f"{samples[-1][0]:7.0f} s  rss {samples[-1][1] / 2**20:6.1f} MiB  fds {samples[-1][2]:4d}  "
                  f"requests {sum(counts.by.values())}", file=sys.stderr, flush=True)
            if time.time() >= next_restart:
                demo.send_signal(signal.SIGTERM)
                demo.wait(10)
                time.sleep(0.5)
                demo = start_demo()
                restarts += 1
                next_restart = time.time() + a.restart_every
        stopping.set()
        for t in threads:
            t.join(30)
        time.sleep(3)  # let aborted exchanges and idle connections settle
        alive = proxy.poll() is None
        settled = (rss(proxy.pid), fds(proxy.pid)) if alive else (0, 0)
    finally:
        stopping.set()
        stop([proxy, demo], 15)
        subprocess.run(["rm", "-f", f"/dev/shm/{region}"])
        shutil.rmtree(d, ignore_errors=True)

    total = sum(counts.by.values())
    print(f"\nsoak: {a.minutes:g} min, {a.clients} clients, {restarts} upstream restarts, {total} requests")
    print("| kind | outcome | count |\n|---|---|---|")
    for (kind, status), n in sorted(counts.by.items(), key=lambda x: (x[0][0], str(x[0][1]))):
        print(f"| {kind} | {status} | {n} |")
    failures = []
    if not alive:
        failures.append("the proxy died")
    if counts.errors:
        failures.append("unexpected answers: " + ", ".join(counts.errors))
    if len(samples) >= 4 and alive:
        q = len(samples) // 4
        warm_fds = min(s[2] for s in samples[:q])
        second = max(s[1] for s in samples[q:2 * q])
        last = max(s[1] for s in samples[3 * q:])
        print(f"\nRSS: {samples[0][1] / 2**20:.1f} MiB at the first sample, {second / 2**20:.1f} MiB (max) in the "
              f"second quarter, {last / 2**20:.1f} MiB (max) in the last, {settled[0] / 2**20:.1f} MiB settled")
        print(f"fds: {samples[0][2]} at the first sample, {warm_fds} after warm-up (min), "
              f"max {max(s[2] for s in samples)}, {settled[1]} settled")
        if last > second + 32 * 2**20:
            failures.append(f"RSS grew from {second / 2**20:.1f} to {last / 2**20:.1f} MiB")
        if settled[1] > warm_fds + 2 * 64 + 8:  # two workers' upstream pools (upstream_pool.keepalive 64)
            failures.append(f"descriptors grew from {warm_fds} to {settled[1]}")
    print("\nsoak: " + ("FAILED: " + "; ".join(failures) if failures else "PASS"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
