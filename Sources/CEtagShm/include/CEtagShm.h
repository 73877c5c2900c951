#ifndef CETAGSHM_H
#define CETAGSHM_H
// Umbrella header of the shared-memory region (layout, seqlocked slots, atomics); no libuv, no io_uring.
#include "etag_shm.h"
#endif
