#!/usr/bin/env python3
"""etag-proxy fleet benchmark (issue #13): what sharing leases and invalidation through Redis costs.

- Checked PUT (If-Match) and 304 from the cache through one replica with `fleet.redis` vs the same build without
  it, in front of one nginx upstream, in interleaved rounds (medians, fleet ÷ single-host ratios), with the Redis
  commands each write costs (`INFO commandstats`) and redis-server's CPU per write.
- The propagation delay: a write through replica B, then replica A polled with the old tag until it stops
  answering 304 (p50/p99 over many writes, loopback; demo API upstream, so every write changes the body).

Everything listens on 127.0.0.1; every process is started here and stopped by PID.
Usage: bench/run --fleet [--rounds 8] [--duration 3] [--writes 500]
"""
import argparse, http.client, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from bench import cpu_seconds, etag_of, nginx_configs, stop, wait_port, wrk, WRITE_SCRIPT  # noqa: E402


def redis_info(port, section):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"*2\r\n$4\r\nINFO\r\n${len(section)}\r\n{section}\r\n".encode())
    data = b""
    while True:
        data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n")
        if head.startswith(b"$") and len(rest) >= int(head[1:]):
            break
    s.close()
    return rest.decode()


def redis_calls(port):
    """Commands clients sent (SET and EVAL: the scripts' own inner calls, which commandstats also counts, are not
    round trips)."""
    stats = redis_info(port, "commandstats")
    return sum(int(n) for name, n in re.findall(r"cmdstat_(\w+):calls=(\d+)", stats) if name in ("set", "eval"))


def request(port, method, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.getheader("ETag"), data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--writes", type=int, default=500, help="writes timed for the propagation delay")
    ap.add_argument("--binary", default=".build/release/etag-proxy")
    ap.add_argument("--baseline", metavar="BINARY", help="another build run as a second fleet replica in every round")
    a = ap.parse_args()
    os.environ["ETAG_PROXY_ADMIN_LISTEN"] = "off"

    d = tempfile.mkdtemp(prefix="etag-fleet-bench-")
    os.chmod(d, 0o755)
    os.makedirs(f"{d}/www")
    with open(f"{d}/www/1k.json", "w") as f:
        f.write(('{"id": 1, "name": "benchmark", "pad": "' + "x" * 1024)[:1021] + '"}\n')
    procs = []

    def start(cmd, port, env=None):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(f"{d}/{port}.log", "w"),
                             env={**os.environ, **(env or {})})
        procs.append(p)
        wait_port(port)
        return p

    def proxy(port, upstream, name, fleet, binary=None):
        conf = (f"listen: 127.0.0.1:{port}\nupstream: http://127.0.0.1:{upstream}\nworkers: 1\naccess_log: off\n"
                f"upstream_pool:\n  keepalive: 256\ncache:\n  name: {name}\n  ttl: 10m\n  collapse: false\n")
        if fleet:
            conf += f"fleet:\n  redis: redis://127.0.0.1:18190\n  name: bench\n"
        with open(f"{d}/{name}.yaml", "w") as f:
            f.write(conf)
        return start([binary or a.binary, "--config", f"{d}/{name}.yaml"], port)

    regions = ["fleet-bench-single", "fleet-bench-a", "fleet-bench-b", "fleet-bench-demo-a", "fleet-bench-demo-b",
               "fleet-bench-base"]

    def stop_all(*_):
        stop(procs)
        subprocess.run(["rm", "-f"] + [f"/dev/shm/{r}" for r in regions])
        shutil.rmtree(d, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(1)))
    try:
        up, _ = nginx_configs(d, base=18080)
        start(["nginx", "-c", up, "-e", f"{d}/upstream.err"], 18081)
        redis = start(["redis-server", "--port", "18190", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                      18190)
        single = proxy(18183, 18081, regions[0], fleet=False)
        fleet = proxy(18184, 18081, regions[1], fleet=True)
        time.sleep(0.5)  # subscribed
        with open(f"{d}/write.lua", "w") as f:
            f.write(WRITE_SCRIPT)
        tag = etag_of(18183, "/w/1")
        targets = {"single host": (18183, single), "fleet (Redis)": (18184, fleet)}
        if a.baseline:
            targets["fleet, baseline build"] = (18187, proxy(18187, 18081, regions[5], fleet=True, binary=a.baseline))
            time.sleep(0.5)
            etag_of(18187, "/1k.json")
        scenarios = {
            "PUT If-Match": ("/", None, f"{d}/write.lua", {"TAG": tag}),
            "304 1k": ("/1k.json", f"If-None-Match: {etag_of(18183, '/1k.json')}", None, None),
        }
        etag_of(18184, "/1k.json")  # the fleet replica's own entry
        res = {(s, t): [] for s in scenarios for t in targets}
        redis_per_write = []
        for r in range(a.rounds):
            for sc, (path, header, script, env) in scenarios.items():
                order = list(targets)
                if r % 2:
                    order.reverse()
                for t in order:
                    port, p = targets[t]
                    c0, rc0, calls0 = cpu_seconds(p.pid), cpu_seconds(redis.pid), redis_calls(18190)
                    rps, total, p99, err, _ = wrk(port, path, a.duration, a.connections, header, script, env)
                    cpu = (cpu_seconds(p.pid) - c0) / total * 1e6
                    rcpu = (cpu_seconds(redis.pid) - rc0) / total * 1e6
                    calls = (redis_calls(18190) - calls0) / total
                    res[(sc, t)].append((rps, p99, cpu, rcpu, calls))
                    print(f"round {r + 1} {sc:13s} {t:14s} {rps:9.0f} req/s p99 {p99:6.2f} ms cpu {cpu:6.1f} us/req "
                          f"redis {rcpu:5.1f} us/req, {calls:4.2f} cmds/req {err}", file=sys.stderr, flush=True)

        print("\n| scenario | target | req/s (median) | p99 ms | proxy CPU µs/req | Redis CPU µs/req | Redis round trips/req"
              " | req/s ÷ single host | CPU ÷ single host |")
        print("|---|---|---|---|---|---|---|---|---|")
        for sc in scenarios:
            base = res[(sc, "single host")]
            for t in targets:
                rows = res[(sc, t)]
                med = lambda i: statistics.median(x[i] for x in rows)
                ratio = lambda i: statistics.median(x[i] / b[i] for x, b in zip(rows, base))
                spread = f"{min(x[0] for x in rows):.0f}–{max(x[0] for x in rows):.0f}"
                print(f"| {sc} | {t} | {med(0):.0f} ({spread}) | {med(1):.2f} | {med(2):.1f} | {med(3):.1f} | "
                      f"{med(4):.2f} | {ratio(0):.2f} | {ratio(2):.2f} |")

        # Propagation: two replicas in front of the demo API (every write changes the body).
        demo = start([os.path.join(os.path.dirname(a.binary), "etag-demo-api"), "--listen", "127.0.0.1:18191"],
                     18191)
        ra = proxy(18185, 18191, regions[3], fleet=True)
        rb = proxy(18186, 18191, regions[4], fleet=True)
        time.sleep(0.5)
        request(18185, "POST", "/persons", {"Content-Type": "application/json"}, '{"id": 7, "name": "n0"}')
        delays = []
        for i in range(a.writes):
            _, old, _ = request(18185, "GET", "/persons/7")
            s, _, _ = request(18185, "GET", "/persons/7", {"If-None-Match": old})
            assert s == 304, s
            s, _, _ = request(18186, "PUT", "/persons/7", {"If-Match": old, "Content-Type": "application/json"},
                              f'{{"id": 7, "name": "n{i + 1}"}}')
            assert s == 200, s
            t0 = time.perf_counter()
            while request(18185, "GET", "/persons/7", {"If-None-Match": old})[0] == 304:
                if time.perf_counter() - t0 > 2:
                    raise SystemExit("replica A kept answering 304 for 2 s after the write")
            delays.append((time.perf_counter() - t0) * 1000)
        # The floor of that measurement: one conditional GET that is answered 200.
        floor = []
        for _ in range(200):
            t0 = time.perf_counter()
            request(18185, "GET", "/persons/7", {"If-None-Match": '"0"'})
            floor.append((time.perf_counter() - t0) * 1000)
        delays.sort()
        q = lambda p: delays[min(len(delays) - 1, int(p * len(delays)))]
        print(f"\npropagation (write through B answered → A stops answering 304), {len(delays)} writes: "
              f"p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, max {delays[-1]:.2f} ms; "
              f"one 200 GET from A alone takes p50 {statistics.median(floor):.2f} ms")
        _ = (demo, ra, rb)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
