#ifndef ETAG_COPENSSL_SHIM_H
#define ETAG_COPENSSL_SHIM_H
// SHA1_Init/Update/Final are deprecated in OpenSSL 3.0 in favour of EVP; the wrappers below use them on purpose
// (see etag_sha1_init) and nothing else in the proxy calls a deprecated function.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

// OpenSSL spells these as macros over SSL_ctrl / BIO_ctrl, which Swift does not import: thin functions instead.

static inline int etag_ssl_set_sni(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

static inline int etag_ssl_ctx_set_min_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

static inline int etag_ssl_ctx_set_max_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}

static inline void etag_ssl_ctx_set_client_session_cache(SSL_CTX *ctx) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
}

/// Moving write buffers: the memory BIO is drained between SSL_write calls, so a retried write may come from
/// another address; partial writes stay off (a write is taken whole or not at all).
static inline void etag_ssl_ctx_set_modes(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
}

/// The bytes waiting in a memory BIO, without copying them.
static inline long etag_bio_mem_data(BIO *bio, char **data) {
    return BIO_get_mem_data(bio, data);
}

static inline int etag_bio_reset(BIO *bio) {
    return (int)BIO_reset(bio);
}

/// A memory BIO that reports "retry" rather than EOF when empty (the default for BIO_s_mem is -1 = retry).
static inline BIO *etag_bio_new_mem(void) {
    BIO *b = BIO_new(BIO_s_mem());
    if (b) BIO_set_mem_eof_return(b, -1);
    return b;
}

/// The listener's options: the server's cipher order, no renegotiation (TLS 1.2; 1.3 has none).
static inline void etag_ssl_ctx_server_options(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
}

/// For a custom BIO: "no bytes now, try again" after a read, and the flags cleared before an operation.
static inline void etag_bio_set_retry_read(BIO *bio) {
    BIO_set_retry_read(bio);
}

static inline void etag_bio_clear_retry(BIO *bio) {
    BIO_clear_retry_flags(bio);
}

/// ALPN on the listener: `http/1.1` when the client offers it; a client that offers only other protocols is
/// refused with the no_application_protocol alert (RFC 7301 §3.2). A client that sends no ALPN is served.
static int etag_alpn_select_http11(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                   const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    (void)arg;
    static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char *selected = NULL;
    if (SSL_select_next_proto(&selected, outlen, http11, sizeof http11, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

static inline void etag_ssl_ctx_select_http11(SSL_CTX *ctx) {
    SSL_CTX_set_alpn_select_cb(ctx, etag_alpn_select_http11, NULL);
}

/// The offer `http/1.1` sent by the upstream client (0 on success, as SSL_set_alpn_protos returns).
static inline int etag_ssl_offer_http11(SSL *ssl) {
    static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    return SSL_set_alpn_protos(ssl, http11, sizeof http11);
}

/// SHA-1 without EVP: OpenSSL 3.0's EVP_DigestInit_ex frees and re-allocates the provider's context on every
/// init of a reused EVP_MD_CTX (CRYPTO_malloc + OPENSSL_cleanse + free, ~450 instructions per message), and every
/// EVP_DigestUpdate goes through the provider dispatch. The proxy hashes two short messages per cached 304 (the
/// cache key) and one per body; the low-level functions run the same block code (SHA-NI where the CPU has it) on
/// a context the caller owns, with nothing allocated.
static inline void etag_sha1_init(SHA_CTX *c) { SHA1_Init(c); }
static inline void etag_sha1_update(SHA_CTX *c, const void *p, size_t n) { SHA1_Update(c, p, n); }
static inline void etag_sha1_final(SHA_CTX *c, unsigned char out[20]) { SHA1_Final(out, c); }

#endif
