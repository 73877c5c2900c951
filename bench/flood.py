#!/usr/bin/env python3
"""Cache-flood benchmark (`bench/run --flood`): do the hot entries survive a scan of one-off URLs?

One nginx upstream answers every path with a small JSON body (no ETag). etag-proxy runs with a small shared
region (`cache.size`, default 1 MiB) so that a scan is cheap to run. A hot set of a quarter of the region's slots
is fetched (tagged and stored) and asked for again; then a scan of `--scan-factor` × the slots of one-off URLs
runs while the hot set keeps being asked for (one hot request per 8 scan requests, conditional); then every hot
URL is asked once more with its tag and counted as surviving when the answer is a 304 from the cache
(`Cache-Status: etag-proxy; hit`). With `--baseline BIN` the same run is repeated against another build.
Everything on 127.0.0.1; every process stopped by PID.
"""
import argparse, http.client, os, shutil, subprocess, sys, tempfile, threading, time, urllib.request

from bench import nginx_conf, stop, wait_port


def metric(admin, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def run_one(binary, d, size, factor, threads, label):
    port, admin = 18301, 18302
    region = "etag-proxy-bench-flood"
    with open(f"{d}/p.yaml", "w") as f:
        f.write(f"listen: 127.0.0.1:{port}\nupstream: http://127.0.0.1:18300\nworkers: 1\naccess_log: off\n"
                f"admin:\n  listen: 127.0.0.1:{admin}\n"
                f"cache:\n  name: {region}\n  size: {size}\n  ttl: 10m\n  collapse: false\n")
    subprocess.run(["rm", "-f", f"/dev/shm/{region}"])
    p = subprocess.Popen([binary, "--config", f"{d}/p.yaml"], stdout=subprocess.DEVNULL,
                         stderr=open(f"{d}/proxy.log", "w"))
    try:
        wait_port(port)
        slots = int(metric(admin, "etag_proxy_cache_capacity"))
        hot = [f"/hot/{i}" for i in range(slots // 4)]
        tags = {}
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def get(c, path, tag=None):
            c.request("GET", path, headers={"If-None-Match": tag} if tag else {})
            r = c.getresponse()
            r.read()
            return r.status, r.getheader("ETag"), r.getheader("Cache-Status") or ""

        for h in hot:
            _, tags[h], _ = get(conn, h)
        for h in hot:
            get(conn, h, tags[h])
        scan = slots * factor
        done = [0]
        lock = threading.Lock()
        started = time.time()

        def scanner(k):
            c = http.client.HTTPConnection("127.0.0.1", port)
            i, turn, j = k, k, 0
            while i < scan:
                get(c, f"/scan/{label}/{i}")
                j += 1
                if j % 8 == 0:  # every thread takes its turn over the hot set, so all of it stays asked for
                    h = hot[turn % len(hot)]
                    turn += threads
                    get(c, h, tags[h])
                i += threads
                with lock:
                    done[0] += 1
            c.close()

        ts = [threading.Thread(target=scanner, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        took = time.time() - started
        outcomes = {}
        for h in hot:
            st, _, cs = get(conn, h, tags[h])
            outcomes[(st, cs)] = outcomes.get((st, cs), 0) + 1
        survived = sum(n for (st, cs), n in outcomes.items() if st == 304 and cs.endswith("; hit"))
        if os.environ.get("FLOOD_DEBUG"):
            print(outcomes, file=sys.stderr)
        refused = metric(admin, "etag_proxy_cache_admissions_refused_total")
        evicted = metric(admin, "etag_proxy_cache_evictions_total")
        conn.close()
        return slots, len(hot), scan, survived, refused, evicted, took
    finally:
        stop([p], 10)
        subprocess.run(["rm", "-f", f"/dev/shm/{region}"])


def main():
    os.environ.pop("ETAG_PROXY_ADMIN_LISTEN", None)
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/etag-proxy")
    ap.add_argument("--baseline", help="another etag-proxy build, run the same way after this one")
    ap.add_argument("--size", default="1MiB", help="cache.size of the region")
    ap.add_argument("--scan-factor", type=int, default=10, help="one-off URLs, as a multiple of the slots")
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="etag-bench-flood-")
    os.chmod(d, 0o755)
    up = nginx_conf(d, "upstream", """
      server { listen 127.0.0.1:18300; etag off;
               location / { default_type application/json; return 200 '{"id":1,"name":"flood"}'; } }""")
    nginx = subprocess.Popen(["nginx", "-c", up, "-e", f"{d}/upstream.err"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_port(18300)
        builds = [("this build", a.binary)] + ([("baseline", a.baseline)] if a.baseline else [])
        print("| build | slots | hot entries | one-off URLs | hot entries surviving | admissions refused | "
              "evictions | scan took s |")
        print("|---|---|---|---|---|---|---|---|")
        for label, binary in builds:
            slots, hot, scan, survived, refused, evicted, took = run_one(
                binary, d, a.size, a.scan_factor, a.threads, label.replace(" ", "-"))
            print(f"| {label} | {slots} | {hot} | {scan} | **{survived} ({100 * survived / hot:.0f}%)** | "
                  f"{refused:.0f} | {evicted:.0f} | {took:.1f} |", flush=True)
    finally:
        stop([nginx])
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
