#ifndef ETAG_CLIBUV_SHIM_H
#define ETAG_CLIBUV_SHIM_H
#include <uv.h>

/* Handle casts that Swift cannot express without rebinding memory. */
static inline uv_handle_t *etag_uv_handle(void *h) { return (uv_handle_t *)h; }
static inline uv_stream_t *etag_uv_stream(void *h) { return (uv_stream_t *)h; }

#endif
