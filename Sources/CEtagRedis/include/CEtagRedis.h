#ifndef CETAGREDIS_H
#define CETAGREDIS_H
// hiredis's asynchronous client on a libuv loop, for the fleet's Redis connections (Debian libhiredis-dev 0.14).
// The adapter to libuv is our own (etag_redis.c says why); Swift sees only these
// entry points and hiredis's own types. Every call is made on the thread of the loop the context is attached to.
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <uv.h>

/// Starts a non-blocking connect to `ip` (a numeric address: names are looked up by the caller, off the loop)
/// and attaches the context to `loop`. `owner` is stored in the context's `data`. Returns NULL when the context
/// could not be made or attached; *err then holds hiredis's message (at most `errlen` bytes, NUL-terminated).
redisAsyncContext *etag_redis_connect(uv_loop_t *loop, const char *ip, int port, void *owner,
                                      redisConnectCallback *on_connect, redisDisconnectCallback *on_disconnect,
                                      char *err, size_t errlen);

/// Queues one command (argv form: no format string, so any bytes are safe). REDIS_OK or REDIS_ERR (the context
/// is disconnecting).
static inline int etag_redis_command(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata, int argc,
                                     const char **argv, const size_t *argvlen) {
    return redisAsyncCommandArgv(ac, fn, privdata, argc, argv, argvlen);
}

/// The context's owner (`data`), and its error text ("" when none).
static inline void *etag_redis_owner(const redisAsyncContext *ac) { return ac->data; }
static inline const char *etag_redis_error(const redisAsyncContext *ac) { return ac->errstr ? ac->errstr : ""; }

/// A reply's element `i` (an array's).
static inline redisReply *etag_redis_element(const redisReply *r, size_t i) { return r->element[i]; }

#endif
