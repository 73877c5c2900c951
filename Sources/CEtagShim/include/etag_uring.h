#ifndef ETAG_URING_H
#define ETAG_URING_H
#include <stddef.h>

/// A ring for batched socket sends (io_uring), opaque to Swift.
typedef struct etag_uring etag_uring;

/// A ring with room for `entries` sends per system call, or NULL (and the errno in *error) when io_uring is
/// unavailable (old kernel, seccomp, kernel.io_uring_disabled).
etag_uring *etag_uring_new(unsigned entries, int *error);
void etag_uring_free(etag_uring *u);

/// Sends bufs[i] (lens[i] bytes) on fds[i] for i < n without blocking, with as few system calls as the ring
/// allows. results[i]: bytes sent; -EAGAIN: nothing sent (write it the ordinary way); -EIO: submitted but the
/// outcome is unknown (close that connection); another -errno: the send failed. Returns 0, or -errno when the
/// ring failed and must not be used again.
int etag_uring_send_all(etag_uring *u, const int *fds, void *const *bufs, const size_t *lens, int n, int *results);
#endif
