/* Byte images (bytes.h): little-endian writes into a growing buffer, and
 * reads that stop at the first problem instead of trusting the image. */
#include "bytes.h"
#include "grow.h"

#include <stdlib.h>
#include <string.h>

static bool grow(RtBuf *b, size_t n) {
    if (b->oom) return false;
    if (n <= SIZE_MAX - b->n && rt_grow(&b->data, &b->cap, b->n + n, 4096)) return true;
    b->oom = true;
    return false;
}

void rt_buf_bytes(RtBuf *b, const void *p, size_t n) {
    if (!n || !grow(b, n)) return;
    memcpy(b->data + b->n, p, n);
    b->n += n;
}

static void put_le(RtBuf *b, uint64_t v, int bytes) {
    uint8_t t[8];
    for (int i = 0; i < bytes; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    rt_buf_bytes(b, t, (size_t)bytes);
}

void rt_buf_u8(RtBuf *b, uint8_t v) {
    put_le(b, v, 1);
}
void rt_buf_u32(RtBuf *b, uint32_t v) {
    put_le(b, v, 4);
}
void rt_buf_i64(RtBuf *b, int64_t v) {
    put_le(b, (uint64_t)v, 8);
}

void rt_buf_f64(RtBuf *b, double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    put_le(b, u, 8);
}

void rt_buf_str(RtBuf *b, const char *s) {
    if (!s) {
        rt_buf_u32(b, UINT32_MAX);
        return;
    }
    size_t n = strlen(s);
    rt_buf_u32(b, (uint32_t)n);
    rt_buf_bytes(b, s, n);
}

void rt_buf_align(RtBuf *b, size_t align) {
    static const uint8_t zeros[RT_IMAGE_ALIGN];
    while (b->n % align && !b->oom) {
        size_t k = align - b->n % align;
        rt_buf_bytes(b, zeros, k < sizeof zeros ? k : sizeof zeros);
    }
}

void rt_reader_fail(RtReader *r, const char *why) {
    if (!r->bad) r->why = why;
    r->bad = true;
}

const uint8_t *rt_read_bytes(RtReader *r, size_t n) {
    if (r->bad) return NULL;
    if (n > r->n - r->at) {
        rt_reader_fail(r, "truncated");
        return NULL;
    }
    const uint8_t *p = r->p + r->at;
    r->at += n;
    return p;
}

static uint64_t get_le(RtReader *r, int bytes) {
    const uint8_t *p = rt_read_bytes(r, (size_t)bytes);
    uint64_t v = 0;
    for (int i = 0; p && i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

uint8_t rt_read_u8(RtReader *r) {
    return (uint8_t)get_le(r, 1);
}
uint32_t rt_read_u32(RtReader *r) {
    return (uint32_t)get_le(r, 4);
}
int64_t rt_read_i64(RtReader *r) {
    return (int64_t)get_le(r, 8);
}

double rt_read_f64(RtReader *r) {
    uint64_t u = get_le(r, 8);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

void *rt_reader_alloc(RtReader *r, size_t n, size_t size) {
    if (r->bad) return NULL;
    size_t bytes;
    if (__builtin_mul_overflow(n ? n : 1, size, &bytes)) {
        rt_reader_fail(r, "a count too large for memory");
        return NULL;
    }
    void *p = r->alloc(r->ctx, bytes);
    if (!p) {
        rt_reader_fail(r, "out of memory");
        return NULL;
    }
    memset(p, 0, bytes);
    return p;
}

const char *rt_read_str(RtReader *r) {
    uint32_t n = rt_read_u32(r);
    if (r->bad || n == UINT32_MAX) return NULL;
    const uint8_t *p = rt_read_bytes(r, n);
    char *s = p ? rt_reader_alloc(r, (size_t)n + 1, 1) : NULL;
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

void rt_read_align(RtReader *r, size_t align) {
    size_t pad = (align - r->at % align) % align;
    rt_read_bytes(r, pad);
}

int64_t rt_read_count(RtReader *r, int64_t max, size_t size) {
    int64_t n = rt_read_i64(r);
    if (r->bad) return 0;
    if (n < 0 || n > max || (size && (uint64_t)n > (r->n - r->at) / size)) {
        rt_reader_fail(r, "a count out of range");
        return 0;
    }
    return n;
}
