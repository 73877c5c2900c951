// hiredis's asynchronous context on a libuv loop (see CEtagRedis.h).
//
// An adapter of our own rather than hiredis's adapters/libuv.h: that one waits for the socket to be writable
// before every write (two epoll_ctl calls and one more loop iteration per command batch). Here, once connected,
// output is written from a prepare handle right before the loop next polls — every command queued during one
// loop iteration goes out in one write() — and the socket is polled for writability only while the kernel's
// buffer is full or the connect is in progress.
//
// Ownership: `etag_redis_events` is allocated per context and owned by it; hiredis calls `cleanup` when it frees
// the context, which closes both handles, and the memory is freed when the second has closed. Loop thread only.
#include "CEtagRedis.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    redisAsyncContext *context;  // NULL once hiredis has freed the context
    uv_poll_t poll;
    uv_prepare_t flush;
    int events;                  // what `poll` waits for
    int flushing;                // inside on_flush: a write that did not finish waits for writability
    int open_handles;
} etag_redis_events;

static void set_poll(etag_redis_events *p, int events);

static void on_poll(uv_poll_t *handle, int status, int events) {
    etag_redis_events *p = handle->data;
    // An error (the socket failed): let hiredis read it and report the disconnect.
    if (status < 0) events = UV_READABLE;
    if (p->context != NULL && (events & UV_READABLE)) redisAsyncHandleRead(p->context);
    if (p->context != NULL && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
}

static void on_flush(uv_prepare_t *handle) {
    etag_redis_events *p = handle->data;
    uv_prepare_stop(&p->flush);
    if (p->context == NULL) return;
    p->flushing = 1;
    redisAsyncHandleWrite(p->context);  // may free the context (a write error): `p` stays until its handles close
    p->flushing = 0;
}

static void set_poll(etag_redis_events *p, int events) {
    if (events == p->events) return;
    p->events = events;
    if (events) {
        uv_poll_start(&p->poll, events, on_poll);
    } else {
        uv_poll_stop(&p->poll);
    }
}

static void add_read(void *privdata) {
    etag_redis_events *p = privdata;
    set_poll(p, p->events | UV_READABLE);
}

static void del_read(void *privdata) {
    etag_redis_events *p = privdata;
    set_poll(p, p->events & ~UV_READABLE);
}

static void add_write(void *privdata) {
    etag_redis_events *p = privdata;
    if (p->flushing || !(p->context->c.flags & REDIS_CONNECTED)) {
        set_poll(p, p->events | UV_WRITABLE);  // the kernel's buffer is full, or the connect is in progress
    } else {
        uv_prepare_start(&p->flush, on_flush);
    }
}

static void del_write(void *privdata) {
    etag_redis_events *p = privdata;
    set_poll(p, p->events & ~UV_WRITABLE);
}

static void on_close(uv_handle_t *handle) {
    etag_redis_events *p = handle->data;
    if (--p->open_handles == 0) free(p);
}

static void cleanup(void *privdata) {
    etag_redis_events *p = privdata;
    p->context = NULL;
    uv_close((uv_handle_t *)&p->poll, on_close);
    uv_close((uv_handle_t *)&p->flush, on_close);
}

static int attach(redisAsyncContext *ac, uv_loop_t *loop) {
    etag_redis_events *p = calloc(1, sizeof(*p));
    if (p == NULL) return REDIS_ERR;
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    uv_prepare_init(loop, &p->flush);
    p->open_handles = 2;
    p->context = ac;
    p->poll.data = p;
    p->flush.data = p;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return REDIS_OK;
}

redisAsyncContext *etag_redis_connect(uv_loop_t *loop, const char *ip, int port, void *owner,
                                      redisConnectCallback *on_connect, redisDisconnectCallback *on_disconnect,
                                      char *err, size_t errlen) {
    redisAsyncContext *ac = redisAsyncConnect(ip, port);
    if (ac == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (ac->err) {
        snprintf(err, errlen, "%s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    if (attach(ac, loop) != REDIS_OK) {
        snprintf(err, errlen, "cannot attach to the event loop");
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = owner;
    redisAsyncSetConnectCallback(ac, on_connect);  // polls for writability: how the connect's end is seen
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}
