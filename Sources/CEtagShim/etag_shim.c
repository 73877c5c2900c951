#define _GNU_SOURCE
// C helpers for what Swift cannot express directly. No state; every function is thread-safe.
#include "etag_shim.h"
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/time.h>
#include <time.h>
#include "etag_uring.h"

int etag_tcp_bind_reuseport(uv_loop_t *loop, uv_tcp_t *tcp, const struct sockaddr *addr) {
    int rc = uv_tcp_init_ex(loop, tcp, addr->sa_family);
    if (rc != 0) return rc;
    uv_os_fd_t fd;
    rc = uv_fileno((uv_handle_t *)tcp, &fd);
    if (rc != 0) return rc;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return uv_translate_sys_error(errno);
    return uv_tcp_bind(tcp, addr, 0);
}

int etag_port_in_use(const struct sockaddr *addr) {
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return uv_translate_sys_error(errno);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* a port in TIME_WAIT is free */
    socklen_t len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int rc = bind(fd, addr, len);
    int err = errno;
    close(fd);
    if (rc == 0) return 0;
    return err == EADDRINUSE ? 1 : uv_translate_sys_error(err);
}

int etag_tcp_local_port(uv_tcp_t *tcp) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    int rc = uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &len);
    if (rc != 0) return rc;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return UV_EINVAL;
}

int etag_parse_ip(const char *host, int port, struct sockaddr_storage *out) {
    memset(out, 0, sizeof *out);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0) return 0;
    return uv_ip6_addr(host, port, (struct sockaddr_in6 *)out);
}

int etag_resolve_host(const char *host, int port, struct sockaddr_storage *out) {
    if (etag_parse_ip(host, port, out) == 0) return 0;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) return -1;
    memset(out, 0, sizeof *out);
    memcpy(out, res->ai_addr, res->ai_addrlen);
    if (out->ss_family == AF_INET) ((struct sockaddr_in *)out)->sin_port = htons(port);
    else if (out->ss_family == AF_INET6) ((struct sockaddr_in6 *)out)->sin6_port = htons(port);
    freeaddrinfo(res);
    return 0;
}

int etag_tcp_peer_ip(uv_tcp_t *tcp, char *buf, int len) {
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sl) != 0) return 0;
    int rc = ss.ss_family == AF_INET6 ? uv_ip6_name((struct sockaddr_in6 *)&ss, buf, len)
                                      : uv_ip4_name((struct sockaddr_in *)&ss, buf, len);
    if (rc != 0) return 0;
    return (int)strlen(buf);
}

void etag_block_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGPIPE);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int etag_wait_signal(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {}
    return sig;
}

int etag_http_status(const char *host, int port, const char *path, int timeout_ms) {
    struct sockaddr_storage ss;
    if (etag_parse_ip(host, port, &ss) != 0) return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* Linux bounds connect(2) by it too */
    socklen_t len = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
    if (n <= 0 || n >= (int)sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    char resp[32];
    size_t got = 0;
    while (got < 12) {
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    resp[got] = 0;
    if (got < 12 || strncmp(resp, "HTTP/1.", 7) != 0) return -1;
    return atoi(resp + 9);
}

int etag_io_uring_available(void) {
    int error = 0;
    etag_uring *u = etag_uring_new(8, &error);
    if (u == NULL) return error == 0 ? -1 : error;
    etag_uring_free(u);
    return 0;
}

int etag_addrinfo_first(const struct addrinfo *info, int port, struct sockaddr_storage *out) {
    for (const struct addrinfo *a = info; a != NULL; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
        memset(out, 0, sizeof *out);
        memcpy(out, a->ai_addr, a->ai_addrlen);
        if (out->ss_family == AF_INET) ((struct sockaddr_in *)out)->sin_port = htons(port);
        else ((struct sockaddr_in6 *)out)->sin6_port = htons(port);
        return 0;
    }
    return -1;
}

int etag_thread_join_within(pthread_t thread, int ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    if (pthread_timedjoin_np(thread, NULL, &deadline) == 0) return 0;
    pthread_detach(thread);
    return -1;
}
