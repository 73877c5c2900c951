#ifndef CETAGSHIM_H
#define CETAGSHIM_H
// Umbrella header of the server's C helpers: the libuv listen/address helpers and the io_uring batch send.
// The shared-memory region is its own module (CEtagShm), so the cache never sees uv.h or links liburing.
#include "etag_shim.h"
#include "etag_uring.h"
#endif
