#!/usr/bin/env python3
"""User-space instructions per request (valgrind callgrind), etag-proxy against nginx — the steadiest figure
this noisy 2-core VM gives: N and then 2N requests over one keep-alive curl connection, each run under callgrind
from start to exit; (I(2N) - I(N)) / N cancels start-up and shutdown.

Scenarios: the 304 answered from the cache (etag-proxy) / from proxy_cache (nginx); the 1 KiB GET (etag-proxy
hashing and tagging it, nginx proxying it); the checked PUT (etag-proxy's pre-fetch, write and re-fetch, nginx
proxying the PUT unchecked). Usage: bench/instructions [--requests 2000] [--binary BUILD] [--keep DIR]
[--scenarios 304,get,put]
"""
import argparse, os, re, shutil, signal, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import etag_of, nginx_configs, wait_port  # noqa: E402


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1))
    raise SystemExit(f"no totals in {path}")


def instructions(d, name, cmd, port, path, header, n, prime, curl_args=()):
    """Instructions for n requests (start-up and shutdown included)."""
    out = f"{d}/{name}.{n}.cg"
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd,
                         stdout=subprocess.DEVNULL, stderr=open(f"{d}/{name}.{n}.log", "w"))
    try:
        wait_port(port, timeout=60)
        tag = etag_of(port, path) if prime else None
        if prime:
            etag_of(port, path)  # cached now (nginx stores after the first answer)
        h = ["-H", header.replace("TAG", tag)] if header else []
        urls = [f"http://127.0.0.1:{port}{path}"] * n
        subprocess.run(["curl", "-s", *curl_args] + h + urls, check=True, timeout=600, stdout=subprocess.DEVNULL)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    return callgrind_total(out)


def per_request(d, name, cmd, port, path, header, n, prime, curl_args=()):
    a = instructions(d, name, cmd, port, path, header, n, prime, curl_args)
    b = instructions(d, name, cmd, port, path, header, 2 * n, prime, curl_args)
    return (b - a) / n


def main():
    # The admin listener on an ephemeral port (a fixed one may be taken; builds without it ignore the variable).
    os.environ["ETAG_PROXY_ADMIN_LISTEN"] = "127.0.0.1:0"
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--binary", default=".build/release/etag-proxy")
    ap.add_argument("--keep", metavar="DIR", help="copy the callgrind files here (for callgrind_annotate)")
    ap.add_argument("--scenarios", default="304,get,put", help="among 304, get, put (the checked write)")
    a = ap.parse_args()
    for tool in ("valgrind", "strip", "nginx", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed")
    d = tempfile.mkdtemp(prefix="etag-instr-")
    os.chmod(d, 0o755)
    os.makedirs(f"{d}/www")
    with open(f"{d}/www/1k.json", "w") as f:
        f.write(('{"id": 1, "name": "benchmark", "pad": "' + "x" * 1024)[:1021] + '"}\n')
    # valgrind 3.19 cannot read the toolchain's DWARF 5: measure a copy without debug info (symbols stay).
    binary = f"{d}/etag-proxy"
    shutil.copy(a.binary, binary)
    subprocess.run(["strip", "--strip-debug", binary], check=True)
    up, px = nginx_configs(d, base=18090)
    with open(f"{d}/etag.yaml", "w") as f:
        f.write("listen: 127.0.0.1:18093\nupstream: http://127.0.0.1:18091\nworkers: 1\naccess_log: off\n"
                "cache:\n  name: etag-proxy-instr\n  ttl: 10m\n  collapse: false\n")
    upstream = subprocess.Popen(["nginx", "-c", up, "-e", f"{d}/upstream.err"], stdout=subprocess.DEVNULL)
    try:
        wait_port(18091)
        ours = [binary, "--config", f"{d}/etag.yaml"]
        theirs = ["nginx", "-c", px, "-e", f"{d}/proxy.err"]
        n = a.requests
        rows = []
        if "304" in a.scenarios:
            rows.append(("304 from cache",
                         per_request(d, "etag304", ours, 18093, "/1k.json", "If-None-Match: TAG", n, True),
                         per_request(d, "nginx304", theirs, 18094, "/1k.json", "If-None-Match: TAG", n, True)))
        if "get" in a.scenarios:
            rows.append(("GET 1 KiB", per_request(d, "etagget", ours, 18093, "/1k.json", None, n, False),
                         per_request(d, "nginxget", theirs, 18092, "/1k.json", None, n, False)))
        if "put" in a.scenarios:
            # The checked write (pre-fetch, PUT, re-fetch) against nginx proxying the same PUT unchecked.
            put = ("-X", "PUT", "--data", '{"x": 1}')
            rows.append(("checked PUT (nginx: plain PUT)",
                         per_request(d, "etagput", ours, 18093, "/w/1", "If-Match: TAG", n, True, put),
                         per_request(d, "nginxput", theirs, 18092, "/w/1", None, n, False, put)))
        print("| path | etag-proxy instructions/req | nginx instructions/req | ratio |")
        print("|---|---|---|---|")
        for label, e, g in rows:
            print(f"| {label} | {e:.0f} | {g:.0f} | {e / g:.2f} |")
    finally:
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(10)
        subprocess.run(["rm", "-f", "/dev/shm/etag-proxy-instr"])
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            for name in os.listdir(d):
                if name.endswith(".cg"):
                    shutil.copy(f"{d}/{name}", a.keep)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
