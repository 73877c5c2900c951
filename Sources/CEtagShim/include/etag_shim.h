#ifndef ETAG_SHIM_H
#define ETAG_SHIM_H
#include <uv.h>
#include <sys/socket.h>
#include <pthread.h>
#include <malloc.h>

/// Hands freed heap memory back to the system (glibc keeps it in its arenas otherwise).
static inline void etag_malloc_trim(void) { (void)malloc_trim(0); }

/// Initializes `tcp` on `loop` for the family of `addr`, sets SO_REUSEPORT (libuv 1.44 has no
/// UV_TCP_REUSEPORT) and binds it. Returns 0 or a libuv error code.
int etag_tcp_bind_reuseport(uv_loop_t *loop, uv_tcp_t *tcp, const struct sockaddr *addr);

/// Whether another socket already listens on `addr` (a bind without SO_REUSEPORT fails with EADDRINUSE): 1 yes,
/// 0 no, or a negative libuv error for another failure. Lets a second proxy refuse to join by mistake.
int etag_port_in_use(const struct sockaddr *addr);

/// The local port a bound TCP handle listens on, or a negative libuv error code.
int etag_tcp_local_port(uv_tcp_t *tcp);

/// Parses "a.b.c.d" or an IPv6 literal plus a port into `out`. Returns 0 or a libuv error code.
int etag_parse_ip(const char *host, int port, struct sockaddr_storage *out);

/// Resolves a host name (blocking, start-up only) to the first IPv4/IPv6 address. Returns 0 or -1.
int etag_resolve_host(const char *host, int port, struct sockaddr_storage *out);

struct addrinfo;
/// Copies the first IPv4/IPv6 address of a getaddrinfo answer into `out` with `port`. Returns 0 or -1.
int etag_addrinfo_first(const struct addrinfo *info, int port, struct sockaddr_storage *out);

/// Formats the peer address of a TCP handle into `buf` ("a.b.c.d" or IPv6). Returns length or 0.
int etag_tcp_peer_ip(uv_tcp_t *tcp, char *buf, int len);

/// Blocks SIGINT, SIGTERM and SIGPIPE for the calling thread (threads started later inherit the mask).
void etag_block_signals(void);

/// Waits for SIGINT or SIGTERM (blocked beforehand) and returns its number.
int etag_wait_signal(void);

/// Joins `thread` if it ends within `ms`; otherwise detaches it. Returns 0 when joined, -1 when left running.
int etag_thread_join_within(pthread_t thread, int ms);

/// Blocking GET of `path` from `host:port` (an IP literal) within `timeout_ms`; the status code, or -1 when no
/// HTTP answer came (the `health` subcommand, never a loop thread).
int etag_http_status(const char *host, int port, const char *path, int timeout_ms);

/// Whether this process may use io_uring: 0, or the errno the kernel refused it with.
int etag_io_uring_available(void);

#endif
