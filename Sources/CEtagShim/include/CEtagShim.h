#ifndef CETAGSHIM_H
#define CETAGSHIM_H
// Umbrella header: everything the Swift modules import from the C shim.
#include "etag_shim.h"
#include "etag_shm.h"
#include "etag_uring.h"
#endif
