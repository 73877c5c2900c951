#!/usr/bin/env python3
"""etag-proxy benchmark: wrk against etag-proxy and nginx (reverse proxy) in front of one nginx upstream,
in many short interleaved rounds; prints medians and the median of the per-round ratios.

Everything listens on 127.0.0.1; every process is started here and stopped by PID. The method is in the README's
Benchmark section. Usage: bench/run [--rounds 8] [--duration 4] [--sizes 1k,64k]
"""
import argparse, os, re, resource, shutil, signal, statistics, subprocess, sys, tempfile, time

CLK = os.sysconf("SC_CLK_TCK")
SIZES = {"1k": 1024, "64k": 64 * 1024, "1m": 1024 * 1024}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLK


def stop(procs, timeout=5):
    """SIGTERM to every process still running (by PID), then wait for each; SIGKILL one that outlives `timeout`."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_port(port, timeout=10):
    import socket
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def workdir(prefix, sizes=SIZES):
    """A temporary directory nginx's workers can read (they may run as an unprivileged user), holding
    www/<name>.json for each of `sizes`: JSON padded to exactly that many bytes."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    os.makedirs(f"{d}/www")
    for name, n in sizes.items():
        unit = '{"id": 1, "name": "benchmark", "pad": "'
        with open(f"{d}/www/{name}.json", "w") as f:
            f.write((unit + "x" * n)[: n - 3] + '"}\n')
    return d


def starter(d, procs):
    """start(cmd, port): runs cmd with its stderr in d/<port>.log, adds it to procs, waits for its port."""
    def start(cmd, port):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(f"{d}/{port}.log", "w"))
        procs.append(p)
        wait_port(port)
        return p
    return start


def nginx_conf(d, name, body):
    path = os.path.join(d, f"{name}.conf")
    with open(path, "w") as f:
        f.write(f"""worker_processes 1;
master_process off;
daemon off;
pid {d}/{name}.pid;
error_log {d}/{name}.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path {d}/{name}-body;
  proxy_temp_path {d}/{name}-proxy;
  fastcgi_temp_path {d}/{name}-fcgi;
  uwsgi_temp_path {d}/{name}-uwsgi;
  scgi_temp_path {d}/{name}-scgi;
  {body}
}}
""")
    return path


def nginx_configs(d, base):
    """The upstream and the peer configs, on ports base+1 (upstream, no ETag), base+5 (upstream with nginx's
    own ETag, so proxy_cache has a validator), base+2 (nginx proxy) and base+4 (nginx proxy_cache)."""
    u, ue, p, pc = base + 1, base + 5, base + 2, base + 4
    up = nginx_conf(d, "upstream", f"""
      server {{ listen 127.0.0.1:{u}; etag off; root {d}/www; location / {{ default_type application/json; }}
        location /w/ {{ default_type application/json;
          if ($request_method = PUT) {{ return 200 '{{"ok":true}}'; }}
          rewrite ^ /1k.json break; }} }}
      server {{ listen 127.0.0.1:{ue}; etag on; root {d}/www; location / {{ default_type application/json; }} }}""")
    px = nginx_conf(d, "proxy", f"""
      upstream api {{ server 127.0.0.1:{u}; keepalive 256; }}
      upstream api_etag {{ server 127.0.0.1:{ue}; keepalive 256; }}
      proxy_cache_path {d}/cache levels=1:2 keys_zone=c:10m;
      server {{ listen 127.0.0.1:{p};
        # Tuned as an operator fronting a JSON API tunes it: bodies up to 512 KiB stay in memory buffers, and none
        # is spooled to a temp file (the default 8 x 4 KiB buffers spill every larger body to disk).
        location / {{ proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection "";
                     proxy_buffer_size 16k; proxy_buffers 8 64k; proxy_busy_buffers_size 128k;
                     proxy_max_temp_file_size 0; }} }}
      server {{ listen 127.0.0.1:{pc};
        location / {{ proxy_pass http://api_etag; proxy_http_version 1.1; proxy_set_header Connection "";
                     proxy_cache c; proxy_cache_valid 200 10m; }} }}""")
    return up, px


def haproxy_conf(d, port, upstream):
    """HAProxy as a second peer: one thread, upstream connections reused (`http-reuse always`)."""
    path = os.path.join(d, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(f"""global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 75s
  timeout server 75s
  timeout http-keep-alive 75s
  http-reuse always
frontend fe
  bind 127.0.0.1:{port}
  default_backend api
backend api
  server up 127.0.0.1:{upstream} maxconn 256
""")
    return path


WRITE_SCRIPT = """
local tag = os.getenv("TAG")
request = function()
  local path = "/w/" .. math.random(1, 100000)
  local headers = {["Host"] = "127.0.0.1", ["Content-Type"] = "application/json"}
  if tag ~= nil and tag ~= "" then headers["If-Match"] = tag end
  return wrk.format("PUT", path, headers, '{"x": 1}')
end
"""


def wrk(port, path, duration, conns, header=None, script=None, env=None, scheme="http"):
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency"]
    for h in (header or "").split("\n"):
        if h.strip():
            cmd += ["-H", h.strip()]
    if script:
        cmd += ["-s", script]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd + [f"{scheme}://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                         timeout=duration + 30, env={**os.environ, **(env or {})}).stdout
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return rps, total, p99, (errors.group(0) if errors else ""), wrk_cpu / total * 1e6


def etag_of(port, path, scheme="http", ca=None):
    tls = ["--cacert", ca] if ca else []
    out = subprocess.run(["curl", "-si", *tls, f"{scheme}://127.0.0.1:{port}{path}", "-o", "/dev/null", "-D", "-"],
                         capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"(?im)^etag:\s*(\S+)", out)
    if not m:
        raise SystemExit(f"no ETag from port {port}{path}")
    return m.group(1)


def main():
    # The admin listener on an ephemeral port (a fixed one may be taken; builds without it ignore the variable).
    os.environ["ETAG_PROXY_ADMIN_LISTEN"] = "127.0.0.1:0"
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--sizes", default="1k,64k,1m")
    ap.add_argument("--scenarios", default="get,304,write")
    ap.add_argument("--binary", default=".build/release/etag-proxy")
    ap.add_argument("--baseline", metavar="BINARY",
                    help="another etag-proxy build (e.g. main's) run beside --binary in every round: ratios are then "
                         "candidate ÷ baseline instead of ÷ nginx (an A/B of two builds in one run)")
    ap.add_argument("--no-haproxy", action="store_true", help="leave HAProxy out (it is a peer when installed)")
    ap.add_argument("--plain", action="store_true",
                    help="etag.max_body: 0 — no body is held or hashed: measures the forwarding core")
    ap.add_argument("--pipeline-refetch", action="store_true",
                    help="concurrency.pipeline_refetch: true for --binary only (with --baseline naming the same build: "
                         "an A/B of the option)")
    a = ap.parse_args()

    d = workdir("etag-bench-")
    procs = []
    start = starter(d, procs)

    def stop_all(*_):
        stop(procs)
        subprocess.run(["rm", "-f", "/dev/shm/etag-proxy-bench", "/dev/shm/etag-proxy-bench-base"])
        shutil.rmtree(d, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(1)))
    try:
        # The upstream: no ETag on 18081 (what etag-proxy is for); nginx's own ETag on 18085 (so nginx's
        # proxy_cache has a validator to answer 304 with).
        up, px = nginx_configs(d, base=18080)
        start(["nginx", "-c", up, "-e", f"{d}/upstream.err"], 18081)
        nginx = start(["nginx", "-c", px, "-e", f"{d}/proxy.err"], 18082)
        wait_port(18084)
        haproxy = None
        if shutil.which("haproxy") and not a.no_haproxy:
            haproxy = start(["haproxy", "-db", "-f", haproxy_conf(d, 18087, 18081)], 18087)
        with open(f"{d}/etag.yaml", "w") as f:
            f.write("listen: 127.0.0.1:18083\nupstream: http://127.0.0.1:18081\nworkers: 1\naccess_log: off\n"
                    "upstream_pool:\n  keepalive: 256\ncache:\n  name: etag-proxy-bench\n  ttl: 10m\n"
                    # Every GET goes upstream, as through the nginx peer (single-flight would share fetches).
                    "  collapse: false\n" + ("etag:\n  max_body: 0\n" if a.plain else ""))
        with open(f"{d}/etag.yaml") as f:
            conf = f.read()
        if a.pipeline_refetch:
            with open(f"{d}/etag.yaml", "a") as f:
                f.write("concurrency:\n  pipeline_refetch: true\n")
        etag = start([a.binary, "--config", f"{d}/etag.yaml"], 18083)
        base = None
        if a.baseline:
            with open(f"{d}/base.yaml", "w") as f:
                f.write(conf.replace("18083", "18086").replace("etag-proxy-bench", "etag-proxy-bench-base"))
            base = start([a.baseline, "--config", f"{d}/base.yaml"], 18086)
        sizes = a.sizes.split(",")

        def with_baseline(targets, header, *extra):
            """With --baseline, the baseline build becomes the peer (second target) the ratios are taken against."""
            if not base:
                return targets
            first, *rest = targets.items()
            return dict([first, ("etag-proxy baseline", (18086, base.pid, header, *extra))] + rest)

        # scenario -> {target: (port, pid, header)}; the first target is the candidate, the second the peer.
        scenarios = {}
        for s in sizes:
            if "get" in a.scenarios:
                scenarios[f"GET {s}"] = (f"/{s}.json", with_baseline({
                    ("etag-proxy (plain relay)" if a.plain else "etag-proxy (hashed 200)"): (18083, etag.pid, None),
                    "nginx proxy": (18082, nginx.pid, None),
                    **({"HAProxy": (18087, haproxy.pid, None)} if haproxy else {}),
                    "direct upstream": (18081, None, None)}, None))
            if "304" in a.scenarios:
                path = f"/{s}.json"
                ours = etag_of(18083, path)
                theirs = etag_of(18084, path)
                etag_of(18084, path)  # now cached
                if base:
                    etag_of(18086, path)  # the baseline's own cache entry (same tag: same body)
                scenarios[f"304 {s}"] = (path, with_baseline({
                    "etag-proxy (304 from cache)": (18083, etag.pid, f"If-None-Match: {ours}"),
                    "nginx proxy_cache": (18084, nginx.pid, f"If-None-Match: {theirs}"),
                    "nginx 304 itself": (18085, None, f"If-None-Match: {theirs}")}, f"If-None-Match: {ours}"))
        if "write" in a.scenarios:
            # PUT with a valid If-Match to random /w/N (every GET of them is the same 1 KiB JSON, every PUT
            # answers {"ok":true}): pre-fetch + write + re-fetch through etag-proxy vs the PUT sent straight.
            with open(f"{d}/write.lua", "w") as f:
                f.write(WRITE_SCRIPT)
            tag = etag_of(18083, "/w/1")
            # The same PUT without If-Match (nginx would evaluate it against its own validators) to the peers.
            scenarios["PUT If-Match"] = ("/", with_baseline({
                "etag-proxy (checked write)": (18083, etag.pid, None, f"{d}/write.lua", {"TAG": tag}),
                "direct upstream": (18081, None, None, f"{d}/write.lua", {"TAG": ""}),
                "nginx proxy (unchecked)": (18082, nginx.pid, None, f"{d}/write.lua", {"TAG": ""}),
                **({"HAProxy (unchecked)": (18087, haproxy.pid, None, f"{d}/write.lua", {"TAG": ""})}
                   if haproxy else {})},
                None, f"{d}/write.lua", {"TAG": tag}))
        res = {(sc, t): [] for sc, (_, ts) in scenarios.items() for t in ts}
        for r in range(a.rounds):
            for sc, (path, targets) in scenarios.items():
                order = list(targets)
                k = r % len(order)
                for t in order[k:] + order[:k]:
                    port, pid, header, *extra = targets[t]
                    script, env = extra if extra else (None, None)
                    c0 = cpu_seconds(pid) if pid else 0
                    rps, total, p99, err, wcpu = wrk(port, path, a.duration, a.connections, header, script, env)
                    cpu = (cpu_seconds(pid) - c0) / total * 1e6 if pid else 0
                    res[(sc, t)].append((rps, p99, cpu, wcpu))
                    print(f"round {r+1} {sc:>8} {t:<28} {rps:>10.0f} req/s  p99 {p99:7.2f} ms  "
                          f"cpu {cpu:6.1f} us/req  wrk {wcpu:5.1f} us/req {err}", file=sys.stderr, flush=True)
        # wrk's own CPU per request: on a 2-core machine, (proxy + wrk) µs/req × req/s near 2 s/s means the
        # machine, not the target, is the limit.
        # Ratios: the median of the per-round ratios, with their range over the rounds in parentheses.
        print("\n| scenario | target | req/s (median) | p99 ms | proxy CPU µs/req | wrk CPU µs/req | req/s ÷ peer | "
              "CPU ÷ peer | req/s ÷ HAProxy | CPU ÷ HAProxy |")
        print("|---|---|---|---|---|---|---|---|---|---|")

        def spread(values, bold=False):
            """The median of the per-round ratios, and their range over the rounds."""
            m = "%.2f" % statistics.median(values)
            return f"{'**' + m + '**' if bold else m} ({min(values):.2f}–{max(values):.2f})"

        def ratios(rows, other):
            r = spread([e[0] / n[0] for e, n in zip(rows, other)], bold=True)
            c = spread([e[2] / n[2] for e, n in zip(rows, other)]) if all(n[2] > 0 for n in other) else ""
            return r, c

        for sc, (_, targets) in scenarios.items():
            names = list(targets)
            peer = res[(sc, names[1])]
            ha = next((res[(sc, t)] for t in names if t.startswith("HAProxy")), None)
            for t in names:
                rows = res[(sc, t)]
                rps = statistics.median(x[0] for x in rows)
                p99 = statistics.median(x[1] for x in rows)
                cpu = statistics.median(x[2] for x in rows)
                wcpu = statistics.median(x[3] for x in rows)
                ratio = cpu_ratio = ha_ratio = ha_cpu = ""
                if t == names[0]:
                    ratio, cpu_ratio = ratios(rows, peer)
                    if ha:
                        ha_ratio, ha_cpu = ratios(rows, ha)
                cpu_text = f"{cpu:.1f}" if targets[t][1] else "—"
                print(f"| {sc} | {t} | {rps:.0f} | {p99:.2f} | {cpu_text} | {wcpu:.1f} | {ratio} | {cpu_ratio} | "
                      f"{ha_ratio} | {ha_cpu} |")
    finally:
        stop_all()


if __name__ == "__main__":
    main()
