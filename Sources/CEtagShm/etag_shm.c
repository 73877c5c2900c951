// Shared-memory region: creation, validation, seqlocked slots. Thread- and process-safe; no global state.
#include "etag_shm.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t etag_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

static void layout(uint64_t size, etag_region_header *h) {
    memset(h, 0, sizeof *h);
    h->version = ETAG_REGION_VERSION;
    h->slot_size = sizeof(etag_slot);
    h->region_size = size;
    uint64_t header = 4096;
    uint64_t body = size - header;
    // A quarter of a slot's size per generation counter and lease are small next to the slots.
    uint64_t lease_bytes = 4096 * 16;
    // Per bucket: its slots, two generation counters, and per slot up to two sketch counters and 16 bytes of
    // doorkeeper (64–128 bits per slot: 6.4–12.8 bits per key of an aging sample of ten keys per slot).
    uint64_t per_bucket = (uint64_t)ETAG_BUCKET_SLOTS * (sizeof(etag_slot) + 2 + 16) + 2 * sizeof(uint32_t);
    uint64_t buckets = (body - lease_bytes - 320) / per_bucket;  // 320: the four 64-byte alignments
    h->slot_count = (uint32_t)(buckets * ETAG_BUCKET_SLOTS);
    h->gen_count = (uint32_t)(buckets * 2);
    h->lease_count = 4096;
    h->slots_offset = header;
    h->gens_offset = align_up(header + (uint64_t)h->slot_count * sizeof(etag_slot), 64);
    h->leases_offset = align_up(h->gens_offset + (uint64_t)h->gen_count * sizeof(uint32_t), 64);
    h->sketch_offset = align_up(h->leases_offset + lease_bytes, 64);
    // The largest power of two of counters that fits in two per slot (so at least one per slot).
    uint32_t bits = 10;
    while ((2ull << bits) <= 2ull * h->slot_count) bits++;
    h->sketch_bits = bits;
    uint32_t door = 12;
    while ((2ull << door) <= 128ull * h->slot_count) door++;
    h->door_bits = door;
    h->door_offset = align_up(h->sketch_offset + (1ull << bits), 64);
}

int etag_region_valid(const void *base, uint64_t size) {
    const etag_region_header *h = base;
    if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != ETAG_REGION_MAGIC) return 0;
    etag_region_header want;
    layout(size, &want);
    return h->version == want.version && h->slot_size == want.slot_size && h->region_size == size &&
           h->slot_count == want.slot_count && h->gen_count == want.gen_count &&
           h->lease_count == want.lease_count && h->slots_offset == want.slots_offset &&
           h->gens_offset == want.gens_offset && h->leases_offset == want.leases_offset &&
           h->sketch_offset == want.sketch_offset && h->sketch_bits == want.sketch_bits &&
           h->door_offset == want.door_offset && h->door_bits == want.door_bits &&
           h->door_offset + (1ull << h->door_bits) / 8 <= size;
}

void etag_region_format(void *base, uint64_t size) {
    etag_region_header *h = base;
    etag_region_header want;
    layout(size, &want);
    memcpy((char *)h + sizeof(uint64_t), (char *)&want + sizeof(uint64_t), sizeof want - sizeof(uint64_t));
    // Publish last: a reader that sees the magic sees the rest.
    __atomic_store_n(&h->magic, ETAG_REGION_MAGIC, __ATOMIC_RELEASE);
}

static int map_fd(int fd, uint64_t size, void **base) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return -errno;
    *base = p;
    return 0;
}

int etag_region_open(const char *name, uint64_t size, void **base, int *created, uint32_t *owner, uint32_t *mode) {
    if (size < 256 * 1024) return -EINVAL;
    for (int attempt = 0; attempt < 4; attempt++) {
        int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd >= 0) {
            fchmod(fd, 0600);
            if (ftruncate(fd, (off_t)size) != 0) {
                int e = errno;
                close(fd);
                shm_unlink(name);
                return -e;
            }
            int rc = map_fd(fd, size, base);
            close(fd);
            if (rc != 0) return rc;
            etag_region_format(*base, size);  // fresh pages are zero: every slot empty, every lease free
            *created = 1;
            return 0;
        }
        if (errno != EEXIST) return -errno;
        fd = shm_open(name, O_RDWR | O_NOFOLLOW, 0600);
        if (fd < 0) {
            if (errno == ENOENT) continue;  // unlinked meanwhile: create it
            return -errno;
        }
        struct stat st;
        if (fstat(fd, &st) != 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        // A region someone else made (another user, or readable/writable by others) is never used: whoever can
        // write it could hold every write lease or plant tags. Checked on the open descriptor, so no rename race.
        if (st.st_uid != geteuid() || (st.st_mode & 0777) != 0600 || !S_ISREG(st.st_mode)) {
            close(fd);
            *owner = (uint32_t)st.st_uid;
            *mode = (uint32_t)(st.st_mode & 07777);
            return ETAG_REGION_FOREIGN;
        }
        if ((uint64_t)st.st_size == size) {
            int rc = map_fd(fd, size, base);
            close(fd);
            if (rc != 0) return rc;
            // The creator may still be formatting: give it a moment to publish the header.
            for (int i = 0; i < 200 && !etag_region_valid(*base, size); i++) usleep(1000);
            if (etag_region_valid(*base, size)) {
                *created = 0;
                return 0;
            }
            munmap(*base, size);
        } else {
            close(fd);
        }
        // Wrong size or header: never trusted. Unlink and build a new one.
        shm_unlink(name);
    }
    return -EAGAIN;
}

void etag_region_close(void *base, uint64_t size) { munmap(base, size); }

int etag_region_unlink(const char *name) { return shm_unlink(name) == 0 ? 0 : -errno; }

static const uint64_t sketch_mult[4] = {
    0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full, 0x165667b19e3779f9ull, 0xd6e8feb86659fd93ull};

static const uint64_t door_mult[3] = {0xff51afd7ed558ccdull, 0xc4ceb9fe1a85ec53ull, 0x94d049bb133111ebull};

static int door_has(const etag_filter *f, uint64_t h) {
    for (int i = 0; i < 3; i++) {
        uint64_t bit = (h * door_mult[i]) >> (64 - f->door_bits);
        if (!(__atomic_load_n(f->door + bit / 64, __ATOMIC_RELAXED) & (1ull << (bit % 64)))) return 0;
    }
    return 1;
}

static void age(const etag_filter *f) {
    // TinyLFU's reset: the one touch that completes a sample halves every counter and clears the doorkeeper.
    uint64_t n = 1ull << f->sketch_bits;
    for (uint64_t j = 0; j < n; j++) {
        uint8_t v = __atomic_load_n(f->sketch + j, __ATOMIC_RELAXED);
        if (v) __atomic_store_n(f->sketch + j, (uint8_t)(v >> 1), __ATOMIC_RELAXED);
    }
    uint64_t words = (1ull << f->door_bits) / 64;
    for (uint64_t j = 0; j < words; j++) __atomic_store_n(f->door + j, 0, __ATOMIC_RELAXED);
}

void etag_filter_touch(const etag_filter *f, uint64_t h, int aging) {
    if (door_has(f, h)) {
        for (int i = 0; i < 4; i++) {
            uint8_t *c = f->sketch + ((h * sketch_mult[i]) >> (64 - f->sketch_bits));
            uint8_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
            if (v < 15) __atomic_store_n(c, (uint8_t)(v + 1), __ATOMIC_RELAXED);
        }
    } else {
        for (int i = 0; i < 3; i++) {
            uint64_t bit = (h * door_mult[i]) >> (64 - f->door_bits);
            __atomic_fetch_or(f->door + bit / 64, 1ull << (bit % 64), __ATOMIC_RELAXED);
        }
    }
    if (aging && f->sample && __atomic_add_fetch(f->ops, 1, __ATOMIC_RELAXED) % f->sample == 0) age(f);
}

uint32_t etag_filter_estimate(const etag_filter *f, uint64_t h) {
    uint32_t least = 255;
    for (int i = 0; i < 4; i++) {
        uint8_t v = __atomic_load_n(f->sketch + ((h * sketch_mult[i]) >> (64 - f->sketch_bits)), __ATOMIC_RELAXED);
        if (v < least) least = v;
    }
    return least + (uint32_t)door_has(f, h);
}

uint64_t etag_payload_check(const etag_payload *p) {
    // Multiply-xorshift over the payload's words: not a MAC (the region is this user's own, mode 0600, checked at
    // open), but no single stray write or bit flip passes it, and it costs ~30 instructions per read.
    const uint64_t *w = (const uint64_t *)p;
    uint64_t h = 0x6574616763686b31ull;
    for (size_t i = 0; i < offsetof(etag_payload, check) / 8; i++) {
        h = (h ^ w[i]) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    return h | 1;  // never 0, the check of an empty slot
}

static int payload_empty(const etag_payload *p) {
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < sizeof(etag_payload) / 8; i++)
        if (w[i] != 0) return 0;
    return 1;
}

int etag_slot_read(const etag_slot *s, etag_payload *out) {
    for (int tries = 0; tries < 4; tries++) {
        uint64_t s1 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1) return 0;
        const uint64_t *src = (const uint64_t *)&s->p;
        uint64_t *dst = (uint64_t *)out;
        for (size_t i = 0; i < sizeof(etag_payload) / 8; i++) dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) != s1) continue;
        if (out->check == etag_payload_check(out) || (out->check == 0 && payload_empty(out))) return 1;
        return ETAG_SLOT_CORRUPT;
    }
    return 0;
}

int etag_slot_write(etag_slot *s, const etag_payload *p, uint64_t stale_after_ns) {
    uint64_t now = etag_now_ns();
    uint64_t cur = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
    // A writer that died mid-update leaves the word odd; after stale_after_ns another writer takes over.
    if ((cur & 1) && now - (cur & ~1ull) < stale_after_ns) return 0;
    uint64_t lock = (now | 1);
    if (lock <= cur) lock = (cur + 2) | 1;
    if (!__atomic_compare_exchange_n(&s->seq, &cur, lock, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return 0;
    etag_payload checked = *p;
    checked.check = etag_payload_check(p);
    const uint64_t *src = (const uint64_t *)&checked;
    uint64_t *dst = (uint64_t *)&s->p;
    for (size_t i = 0; i < sizeof(etag_payload) / 8; i++) __atomic_store_n(&dst[i], src[i], __ATOMIC_RELAXED);
    __atomic_store_n(&s->seq, lock + 1, __ATOMIC_RELEASE);
    return 1;
}
