// io_uring (liburing) for sending many small buffers on many sockets with one system call. liburing's header
// stays in this file: it defines _GNU_SOURCE/_XOPEN_SOURCE, which would clash with the other C modules Swift sees.
#include <liburing.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <errno.h>
#include "etag_uring.h"

struct etag_uring {
    struct io_uring ring;
};

etag_uring *etag_uring_new(unsigned entries, int *error) {
    etag_uring *u = calloc(1, sizeof *u);
    if (u == NULL) {
        *error = ENOMEM;
        return NULL;
    }
    int rc = io_uring_queue_init(entries, &u->ring, 0);
    if (rc != 0) {
        *error = -rc;
        free(u);
        return NULL;
    }
    *error = 0;
    return u;
}

void etag_uring_free(etag_uring *u) {
    if (u == NULL) return;
    io_uring_queue_exit(&u->ring);
    free(u);
}

/// Sends bufs[i] (lens[i] bytes) on fds[i] for i < n without blocking (MSG_DONTWAIT: a full socket completes with
/// -EAGAIN at once instead of waiting), with as few io_uring_enter calls as the ring's size allows. results[i] is
/// the number of bytes sent, or -errno: -EAGAIN when nothing was sent (the caller writes it the ordinary way),
/// -EIO when the send was submitted but its outcome is unknown (the caller must close that connection).
/// Returns 0, or -errno when the ring failed; it must not be used again then (prepared entries that the kernel
/// did not take stay unsubmitted only as long as the ring is never entered again).
int etag_uring_send_all(etag_uring *u, const int *fds, void *const *bufs, const size_t *lens,
                                      int n, int *results) {
    struct io_uring *r = &u->ring;
    for (int i = 0; i < n; i++) results[i] = -EAGAIN;
    int done = 0;
    while (done < n) {
        int batch = 0;
        while (done + batch < n) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(r);
            if (sqe == NULL) break;
            int i = done + batch;
            io_uring_prep_send(sqe, fds[i], bufs[i], lens[i], MSG_DONTWAIT | MSG_NOSIGNAL);
            sqe->user_data = (unsigned long long)i;
            batch++;
        }
        if (batch == 0) return -EBUSY;
        int submitted;
        int tries = 0;
        do {
            submitted = io_uring_submit_and_wait(r, batch);
        } while ((submitted == -EINTR || submitted == -EAGAIN || submitted == -EBUSY) && ++tries < 100);
        if (submitted < 0) return submitted;
        for (int i = done; i < done + submitted; i++) results[i] = -EIO;
        for (int seen = 0; seen < submitted; seen++) {
            struct io_uring_cqe *cqe;
            int rc = io_uring_wait_cqe(r, &cqe);
            if (rc != 0) return rc;
            results[cqe->user_data] = cqe->res;
            io_uring_cqe_seen(r, cqe);
        }
        done += submitted;
        if (submitted < batch) return -EBUSY;
    }
    return 0;
}
