# etag-proxy container image: build with Swift on Debian 12, run on debian:bookworm-slim as a non-root user.
FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libuv1-dev libssl-dev liburing-dev libhiredis-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
# The Swift runtime linked in statically; symbols stripped (the unstripped binary is several times larger).
RUN swift build -c release --static-swift-stdlib --product etag-proxy \
    && swift build -c release --static-swift-stdlib --product etag-demo-api \
    && bin="$(swift build -c release --static-swift-stdlib --show-bin-path)" \
    && install -D "$bin/etag-proxy" /out/etag-proxy && install -D "$bin/etag-demo-api" /out/etag-demo-api \
    && strip /out/etag-proxy /out/etag-demo-api

# The bundled demo API (deploy/compose.yaml runs it behind the proxy): `--target demo`.
FROM debian:bookworm-slim AS demo
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin etag
COPY --from=build /out/etag-demo-api /usr/local/bin/etag-demo-api
USER 10001
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/etag-demo-api", "--listen", "0.0.0.0:9000"]

# The proxy (the default target); ca-certificates: the system trust store for https upstreams.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libuv1 libssl3 liburing2 libhiredis0.14 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin etag
COPY --from=build /out/etag-proxy /usr/local/bin/etag-proxy
COPY config/etag-proxy.yaml /etc/etag-proxy/etag-proxy.yaml
USER 10001
# The access log as one JSON object per line, for log collectors.
ENV ETAG_PROXY_ACCESS_LOG_FORMAT=json
# 8080: the proxy; 9901: the admin listener (/healthz, /readyz, /metrics).
EXPOSE 8080 9901
# Liveness without curl: the binary asks its own admin /healthz and exits 0 or 1.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/etag-proxy", "--config", "/etc/etag-proxy/etag-proxy.yaml", "health"]
STOPSIGNAL SIGTERM
# Exec form: the proxy is PID 1 and receives SIGTERM (drain) and SIGHUP (reload) itself.
ENTRYPOINT ["/usr/local/bin/etag-proxy", "--config", "/etc/etag-proxy/etag-proxy.yaml"]
