#ifndef ETAG_COPENSSL_SHIM_H
#define ETAG_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/err.h>
#endif
