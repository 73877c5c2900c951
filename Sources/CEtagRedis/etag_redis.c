// hiredis's libuv adapter, compiled once (see CEtagRedis.h).
#include "CEtagRedis.h"
#include <hiredis/adapters/libuv.h>
#include <stdio.h>

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
    if (redisLibuvAttach(ac, loop) != REDIS_OK) {
        snprintf(err, errlen, "cannot attach to the event loop");
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = owner;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}
