#!/usr/bin/env python3
"""Small GETs while large ones run (issue #14, item 3): does hashing 1 MiB bodies on the event loop delay the
other connections of that loop?

One etag-proxy build, two configs, both `workers: 1` in front of one nginx upstream:
- "1 MiB hashed": the default `etag.max_body` (8 MiB): every 1 MiB body is held and SHA-1'd on the loop.
- "1 MiB streamed": `etag.max_body: 512KiB`: the 1 MiB bodies stream through unhashed, the 1 KiB ones are still
  hashed. The difference between the two is all that moving the hash off the loop could win for latency.
- nginx proxying the same mix (tuned buffers, as in bench/bench.py), for scale.

Each round runs, per target and in rotating order: wrk on /1k.json alone (its p50/p99), then the same wrk while a
second wrk loads /1m.json (p50/p99 of the small GETs, and the 1 MiB req/s). Medians over rounds.
Usage: bench/run --mixed [--rounds 8] [--duration 3]
"""
import argparse, os, re, shutil, signal, statistics, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import nginx_configs, starter, stop, workdir  # noqa: E402


def wrk_cmd(port, path, duration, conns):
    return ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", f"http://127.0.0.1:{port}{path}"]


def latency(out):
    """(req/s, p50 ms, p99 ms) from wrk --latency output."""
    def ms(q):
        m = re.search(rf"{q}%\s+([\d.]+)(us|ms|s)\b", out)
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), ms(50), ms(99)


def measure(port, duration, small_conns, large_conns, with_large):
    """Small GETs on `port`, with a concurrent load of 1 MiB GETs when `with_large`."""
    large = None
    if with_large:
        large = subprocess.Popen(wrk_cmd(port, "/1m.json", duration + 1, large_conns), stdout=subprocess.PIPE,
                                 text=True)
    small = subprocess.run(wrk_cmd(port, "/1k.json", duration, small_conns), capture_output=True, text=True,
                           timeout=duration + 30).stdout
    big = latency(large.communicate(timeout=duration + 30)[0])[0] if large else 0
    rps, p50, p99 = latency(small)
    return rps, p50, p99, big


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--small-connections", type=int, default=8)
    ap.add_argument("--large-connections", type=int, default=4)
    ap.add_argument("--binary", default=".build/release/etag-proxy")
    a = ap.parse_args()
    os.environ["ETAG_PROXY_ADMIN_LISTEN"] = "off"
    d = workdir("etag-mixed-")
    procs = []
    start = starter(d, procs)

    signal.signal(signal.SIGTERM, lambda *_: (stop(procs), sys.exit(1)))
    try:
        up, px = nginx_configs(d, base=18180)
        start(["nginx", "-c", up, "-e", f"{d}/upstream.err"], 18181)
        start(["nginx", "-c", px, "-e", f"{d}/proxy.err"], 18182)
        targets = {}
        for name, port, extra in (("etag-proxy, 1 MiB hashed", 18183, ""),
                                  ("etag-proxy, 1 MiB streamed", 18186, "etag:\n  max_body: 512KiB\n")):
            conf = f"{d}/{port}.yaml"
            with open(conf, "w") as f:
                f.write(f"listen: 127.0.0.1:{port}\nupstream: http://127.0.0.1:18181\nworkers: 1\naccess_log: off\n"
                        f"cache:\n  name: etag-proxy-mixed-{port}\n  collapse: false\n{extra}")
            start([a.binary, "--config", conf], port)
            targets[name] = port
        targets["nginx proxy"] = 18182
        res = {(t, mode): [] for t in targets for mode in ("alone", "mixed")}
        names = list(targets)
        for r in range(a.rounds):
            k = r % len(names)
            for t in names[k:] + names[:k]:
                for mode in ("alone", "mixed"):
                    row = measure(targets[t], a.duration, a.small_connections, a.large_connections, mode == "mixed")
                    res[(t, mode)].append(row)
                    print(f"round {r+1} {t:<28} {mode:<5} 1k {row[0]:8.0f} req/s p50 {row[1]:6.2f} ms "
                          f"p99 {row[2]:6.2f} ms  1m {row[3]:6.0f} req/s", file=sys.stderr, flush=True)
        print("\n| target | small GETs alone: p50 / p99 ms | with 1 MiB GETs: p50 / p99 ms | 1 KiB req/s | 1 MiB req/s |")
        print("|---|---|---|---|---|")
        for t in names:
            alone, mixed = res[(t, "alone")], res[(t, "mixed")]
            med = lambda rows, i: statistics.median(x[i] for x in rows)  # noqa: E731
            print(f"| {t} | {med(alone, 1):.2f} / {med(alone, 2):.2f} | {med(mixed, 1):.2f} / {med(mixed, 2):.2f} | "
                  f"{med(mixed, 0):.0f} | {med(mixed, 3):.0f} |")
        hashed, streamed = res[(names[0], "mixed")], res[(names[1], "mixed")]
        print(f"\np99 of small GETs with 1 MiB GETs, hashed ÷ streamed (median of per-round ratios): "
              f"{statistics.median(h[2] / s[2] for h, s in zip(hashed, streamed)):.2f}")
    finally:
        stop(procs)
        for port in (18183, 18186):
            subprocess.run(["rm", "-f", f"/dev/shm/etag-proxy-mixed-{port}"])
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
