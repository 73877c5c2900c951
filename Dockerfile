# etag-proxy container image: build with Swift on Debian 12, run on debian:bookworm-slim as a non-root user.
FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libuv1-dev libssl-dev liburing-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product etag-proxy \
    && install -D "$(swift build -c release --static-swift-stdlib --show-bin-path)/etag-proxy" /out/etag-proxy

FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libuv1 libssl3 liburing2 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin etag
COPY --from=build /out/etag-proxy /usr/local/bin/etag-proxy
COPY config/etag-proxy.yaml /etc/etag-proxy/etag-proxy.yaml
USER 10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# Exec form: the proxy is PID 1 and receives SIGTERM itself.
ENTRYPOINT ["/usr/local/bin/etag-proxy", "--config", "/etc/etag-proxy/etag-proxy.yaml"]
