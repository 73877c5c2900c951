#ifndef ETAG_SHM_H
#define ETAG_SHM_H
// The shared-memory region: layout, atomics and seqlock helpers (Swift cannot import _Atomic fields, and
// seqlock reads need explicit fences). The table's policy (probing, eviction, freshness) lives in Swift.
#include <stdint.h>
#include <stddef.h>

#define ETAG_REGION_MAGIC 0x6574616770727831ULL /* "etagprx1" */
#define ETAG_REGION_VERSION 4u
#define ETAG_BUCKET_SLOTS 8u
#define ETAG_VARY_NAMES 48

/// What one cache slot holds: digests and times, never a header value (only the lowercase names of Vary).
typedef struct {
    uint8_t key[20];      // SHA-1 of the cache key
    uint8_t etag[20];     // SHA-1 of the body: the ETag
    uint32_t flags;       // ETAG_SLOT_*
    uint32_t gen;         // URI generation when the response was fetched
    uint64_t stored_ns;   // CLOCK_MONOTONIC
    uint64_t expires_ns;
    uint64_t fields;      // digest of the 200's 304 field set (RFC 9110 §15.4.5); 0 = it had none
    char vary[ETAG_VARY_NAMES]; // extra Vary field names, lowercase, comma-separated (ETAG_SLOT_VARY)
    uint64_t check;       // etag_payload_check of the fields above, set by etag_slot_write; 0 in an empty slot
} etag_payload;

#define ETAG_SLOT_USED 1u
#define ETAG_SLOT_REVALIDATE 2u  // no-cache / private: never answered without asking the upstream
#define ETAG_SLOT_VARY 4u        // a marker: look up again with the Vary fields' values in the key

typedef struct {
    uint64_t seq;         // seqlock: even = stable; odd = being written (value = start time ns | 1)
    uint32_t referenced;  // clock bit for eviction
    uint32_t pad;
    etag_payload p;
} etag_slot;

/// The region header, published last (magic) once the rest is in place.
typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t slot_size;
    uint64_t region_size;
    uint32_t slot_count;
    uint32_t gen_count;
    uint32_t lease_count;
    uint32_t epoch;        // added to every URI generation: one increment makes every entry stale (a fleet
                           // replica that may have missed invalidations)
    uint64_t slots_offset;
    uint64_t gens_offset;
    uint64_t leases_offset;
    uint64_t sketch_offset;
    uint32_t sketch_bits;  // the frequency sketch has 2^sketch_bits byte counters (saturating at 15)
    uint32_t door_bits;    // the doorkeeper has 2^door_bits bits
    uint64_t door_offset;
} etag_region_header;

/// The admission filter's shared state, as one process maps it (pointers into the region).
typedef struct {
    uint8_t *sketch;
    uint64_t *door;
    uint64_t *ops;     // touches counted toward aging
    uint64_t sample;   // touches per aging
    uint32_t sketch_bits;
    uint32_t door_bits;
} etag_filter;

/// Where the sketch's aging counter lives: its own cache line in the header page.
#define ETAG_SKETCH_OPS_OFFSET 512

/// Opens (or creates, mode 0600) the named POSIX shared-memory region of `size` bytes and maps it.
/// A region whose header does not match this layout and size is unlinked and made anew.
/// Returns 0 and sets *base, or -errno. *created tells whether this call built the region.
int etag_region_open(const char *name, uint64_t size, void **base, int *created, uint32_t *owner, uint32_t *mode);
/// etag_region_open's answer for a region not owned by this user with mode 0600 (*owner and *mode say whose).
#define ETAG_REGION_FOREIGN (-100000)
void etag_region_close(void *base, uint64_t size);
int etag_region_unlink(const char *name);
/// Builds a region header in place for `size` bytes (for a region this process created).
void etag_region_format(void *base, uint64_t size);
/// Whether the mapped region's header matches this build's layout for `size` bytes.
int etag_region_valid(const void *base, uint64_t size);

/// The admission filter (TinyLFU: Einziger, Friedman, Manes 2017): how often a key was asked for lately, shared by
/// every worker and process. A doorkeeper (a Bloom filter, three bits per key) takes a key's first ask, so the
/// one-off keys of a scan never reach the frequency sketch (a count-min of four byte counters per key, saturating
/// at 15). Counters and doorkeeper words are read and written with relaxed atomics: two increments may race into
/// one (it is an estimate), and a saturated counter or a set bit is only read, so hot keys do not bounce cache
/// lines between cores.
/// `touch` records one ask for `h`; with `aging`, it also counts toward the sample: every `sample` such touches
/// the counters are halved and the doorkeeper cleared, so the filter follows what is asked for now.
void etag_filter_touch(const etag_filter *f, uint64_t h, int aging);
/// The estimate of `h`'s asks: its least counter, plus one when the doorkeeper has it.
uint32_t etag_filter_estimate(const etag_filter *f, uint64_t h);

/// CLOCK_MONOTONIC in nanoseconds: system-wide, so comparable across processes.
uint64_t etag_now_ns(void);

/// A digest of a payload's fields before `check`: a slot whose check does not match was not written by
/// etag_slot_write (memory corrupted by a stray write, a region tampered with) and is never trusted.
uint64_t etag_payload_check(const etag_payload *p);

/// Consistent copy of a slot's payload: 1 (an empty slot reads as all zeros), 0 when a write is in progress or
/// the read raced one, ETAG_SLOT_CORRUPT when the copy is consistent but fails its check.
int etag_slot_read(const etag_slot *s, etag_payload *out);
#define ETAG_SLOT_CORRUPT (-1)
/// Writes a slot's payload (its check computed here) under its seqlock; 0 when another writer holds it (and is
/// not stale).
int etag_slot_write(etag_slot *s, const etag_payload *p, uint64_t stale_after_ns);

static inline uint32_t etag_load32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void etag_store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t etag_add32(uint32_t *p, uint32_t v) { return __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL); }
static inline uint64_t etag_load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void etag_store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint64_t etag_add64(uint64_t *p, uint64_t v) { return __atomic_add_fetch(p, v, __ATOMIC_RELAXED); }
// A word written by one thread only and read by others (a worker's metrics): a relaxed load and store, no locked
// instruction, no lost update (there is one writer), no torn read.
static inline void etag_count64(uint64_t *p, uint64_t n) {
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
static inline void etag_set64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t etag_peek64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
// A slot's fields that are read and written outside its seqlock, by address inside the region (Swift must not
// form pointers to fields of shared memory through `pointee`, nor read them without an atomic load).
static inline uint32_t etag_slot_referenced(const etag_slot *s) { return __atomic_load_n(&s->referenced, __ATOMIC_RELAXED); }
static inline void etag_slot_set_referenced(etag_slot *s, uint32_t v) { __atomic_store_n(&s->referenced, v, __ATOMIC_RELAXED); }
static inline void etag_slot_set_seq(etag_slot *s, uint64_t v) { __atomic_store_n(&s->seq, v, __ATOMIC_RELEASE); }
// Flips one bit of a slot's payload outside its seqlock and check: what a stray write does. For tests.
static inline void etag_slot_flip_bit(etag_slot *s, size_t byte) {
    __atomic_fetch_xor((uint8_t *)&s->p + byte, 1, __ATOMIC_RELAXED);
}
static inline int etag_cas64(uint64_t *p, uint64_t expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

#endif
