#!/usr/bin/env python3
"""TLS benchmark (`bench/run --tls`): etag-proxy and nginx side by side over TLS, in interleaved rounds.

- GET 1k, https upstream: a plaintext client, the proxy speaks TLS to an nginx TLS upstream (nginx:
  proxy_pass https with keepalive and proxy_ssl_session_reuse on; both verify the upstream's certificate).
- 304 1k over a TLS listener: keep-alive https clients, 304 from etag-proxy's cache vs nginx proxy_cache.
- new TLS connections: the same 304 with `Connection: close`, so every request costs a full handshake (wrk does
  not resume sessions): handshakes per second on the listener.
Certificates are made with openssl for the run. Everything on 127.0.0.1, every process stopped by PID.
"""
import argparse, os, shutil, statistics, subprocess, sys

from bench import SIZES, cpu_seconds, etag_of, nginx_conf, starter, stop, wait_port, workdir, wrk


def certificates(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
    run("req", "-x509", *ec, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-subj", "/CN=bench CA", "-days", "2")
    run("req", *ec, "-keyout", f"{d}/leaf.key", "-out", f"{d}/leaf.csr", "-subj", "/CN=localhost")
    with open(f"{d}/leaf.ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", f"{d}/leaf.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
        "-out", f"{d}/leaf.pem", "-days", "2", "-extfile", f"{d}/leaf.ext")


def main():
    os.environ["ETAG_PROXY_ADMIN_LISTEN"] = "127.0.0.1:0"
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--binary", default=".build/release/etag-proxy")
    a = ap.parse_args()
    d = workdir("etag-bench-tls-", {"1k": SIZES["1k"]})
    certificates(d)
    # TLS 1.2 and 1.3 everywhere (nginx before 1.23.4 offers only up to 1.2 unless told; etag-proxy offers both).
    cert = f"ssl_certificate {d}/leaf.pem; ssl_certificate_key {d}/leaf.key; ssl_protocols TLSv1.2 TLSv1.3;"
    procs = []
    start = starter(d, procs)

    def stop_all():
        stop(procs)
        subprocess.run(["rm", "-f", "/dev/shm/etag-proxy-bench-tls-a", "/dev/shm/etag-proxy-bench-tls-b"])
        shutil.rmtree(d, ignore_errors=True)

    try:
        # Upstreams: plaintext without ETag (18181), with nginx's ETag (18185, proxy_cache's validator), TLS (18191).
        up = nginx_conf(d, "upstream", f"""
          server {{ listen 127.0.0.1:18181; etag off; root {d}/www; location / {{ default_type application/json; }} }}
          server {{ listen 127.0.0.1:18185; etag on; root {d}/www; location / {{ default_type application/json; }} }}
          server {{ listen 127.0.0.1:18191 ssl; {cert} etag off; root {d}/www;
                   location / {{ default_type application/json; }} }}""")
        px = nginx_conf(d, "proxy", f"""
          upstream api_tls {{ server 127.0.0.1:18191; keepalive 256; }}
          upstream api_etag {{ server 127.0.0.1:18185; keepalive 256; }}
          proxy_cache_path {d}/cache levels=1:2 keys_zone=c:10m;
          server {{ listen 127.0.0.1:18192;
            location / {{ proxy_pass https://api_tls; proxy_http_version 1.1; proxy_set_header Connection "";
                         proxy_ssl_session_reuse on; proxy_ssl_verify on; proxy_ssl_name localhost;
                         proxy_ssl_protocols TLSv1.2 TLSv1.3;
                         proxy_ssl_trusted_certificate {d}/ca.pem; }} }}
          server {{ listen 127.0.0.1:18194 ssl; {cert}
            location / {{ proxy_pass http://api_etag; proxy_http_version 1.1; proxy_set_header Connection "";
                         proxy_cache c; proxy_cache_valid 200 10m; }} }}""")
        start(["nginx", "-c", up, "-e", f"{d}/upstream.err"], 18181)
        wait_port(18191)
        nginx = start(["nginx", "-c", px, "-e", f"{d}/proxy.err"], 18192)
        wait_port(18194)
        common = "workers: 1\naccess_log: off\nupstream_pool:\n  keepalive: 256\n"
        with open(f"{d}/a.yaml", "w") as f:
            f.write(f"listen: 127.0.0.1:18193\nupstream: https://127.0.0.1:18191\n{common}"
                    f"upstream_tls:\n  ca_file: {d}/ca.pem\ncache:\n  name: etag-proxy-bench-tls-a\n  collapse: false\n")
        with open(f"{d}/b.yaml", "w") as f:
            f.write(f"listen: 127.0.0.1:18195\nupstream: http://127.0.0.1:18181\n{common}"
                    f"tls:\n  cert: {d}/leaf.pem\n  key: {d}/leaf.key\ncache:\n  name: etag-proxy-bench-tls-b\n  ttl: 10m\n")
        ea = start([a.binary, "--config", f"{d}/a.yaml"], 18193)
        eb = start([a.binary, "--config", f"{d}/b.yaml"], 18195)
        ours = etag_of(18195, "/1k.json", "https", f"{d}/ca.pem")
        theirs = etag_of(18194, "/1k.json", "https", f"{d}/ca.pem")
        etag_of(18194, "/1k.json", "https", f"{d}/ca.pem")  # now cached
        # scenario -> {target: (port, pid, header, scheme)}; the first target is etag-proxy, the second the peer.
        scenarios = {
            "GET 1k, https upstream": {"etag-proxy (hashed 200)": (18193, ea.pid, None, "http"),
                                       "nginx proxy_pass https": (18192, nginx.pid, None, "http")},
            "304 1k, TLS listener": {"etag-proxy (304 from cache)": (18195, eb.pid, f"If-None-Match: {ours}", "https"),
                                     "nginx proxy_cache": (18194, nginx.pid, f"If-None-Match: {theirs}", "https")},
        }
        # A full handshake per request: fewer connections, so the client is not the limit.
        handshakes = {"etag-proxy, new TLS connection per request": (18195, eb.pid, ours, "https"),
                      "nginx, new TLS connection per request": (18194, nginx.pid, theirs, "https")}
        res = {}
        for r in range(a.rounds):
            for sc, targets in list(scenarios.items()) + [("new TLS connections", handshakes)]:
                order = list(targets)
                k = r % len(order)
                for t in order[k:] + order[:k]:
                    port, pid, header, scheme = targets[t]
                    conns = a.connections
                    if sc == "new TLS connections":
                        header, conns = f"If-None-Match: {header}\nConnection: close", 16
                    c0 = cpu_seconds(pid)
                    rps, total, p99, err, wcpu = wrk(port, "/1k.json", a.duration, conns, header, scheme=scheme)
                    cpu = (cpu_seconds(pid) - c0) / total * 1e6
                    res.setdefault((sc, t), []).append((rps, p99, cpu, wcpu))
                    print(f"round {r+1} {sc:>24} {t:<44} {rps:>9.0f} req/s  p99 {p99:7.2f} ms  cpu {cpu:6.1f} us/req "
                          f"wrk {wcpu:5.1f} us/req {err}", file=sys.stderr, flush=True)
        print("\n| scenario | target | req/s (median) | p99 ms | proxy CPU µs/req | req/s ÷ nginx | CPU ÷ nginx |")
        print("|---|---|---|---|---|---|---|")
        for sc, targets in list(scenarios.items()) + [("new TLS connections", handshakes)]:
            ours_t, peer_t = list(targets)
            for t in (ours_t, peer_t):
                rows = res[(sc, t)]
                med = lambda i: statistics.median(x[i] for x in rows)
                ratio = cpu_ratio = ""
                if t == ours_t:
                    peer = res[(sc, peer_t)]
                    ratio = "**%.2f**" % statistics.median(e[0] / n[0] for e, n in zip(rows, peer))
                    cpu_ratio = "%.2f" % statistics.median(e[2] / n[2] for e, n in zip(rows, peer))
                print(f"| {sc} | {t} | {med(0):.0f} | {med(1):.2f} | {med(2):.1f} | {ratio} | {cpu_ratio} |")
    finally:
        stop_all()


if __name__ == "__main__":
    main()
