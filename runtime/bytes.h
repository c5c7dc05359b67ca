/* Byte images: a growable buffer to write one, a bounds-checked reader.
 *
 * Used for the program image a built executable carries (ir/module_image.c,
 * runtime/kprog.c). Integers are little-endian fixed width; strings are a
 * length then bytes (length 0xffffffff: NULL); tensor payloads are aligned
 * to RT_IMAGE_ALIGN from the start of the image so that they can be used
 * in place. The reader never reads past its end: a short or corrupt image
 * sets `bad` and every later read returns zeros, so callers check once. */
#ifndef DFLOW_RUNTIME_BYTES_H
#define DFLOW_RUNTIME_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_IMAGE_ALIGN 64

typedef struct {
    uint8_t *data; /* malloc'd; free() it */
    size_t n, cap;
    bool oom; /* a write failed: the buffer is incomplete */
} RtBuf;

void rt_buf_bytes(RtBuf *b, const void *p, size_t n);
void rt_buf_u8(RtBuf *b, uint8_t v);
void rt_buf_u32(RtBuf *b, uint32_t v);
void rt_buf_i64(RtBuf *b, int64_t v);
void rt_buf_f64(RtBuf *b, double v);
void rt_buf_str(RtBuf *b, const char *s);
void rt_buf_align(RtBuf *b, size_t align); /* zero padding */

typedef struct {
    const uint8_t *p;
    size_t n, at;
    bool bad;
    const char *why; /* the first problem, for the error message */
    /* where arrays and strings read go (the loader's arena) */
    void *(*alloc)(void *ctx, size_t n);
    void *ctx;
} RtReader;

void rt_reader_fail(RtReader *r, const char *why);
const uint8_t *rt_read_bytes(RtReader *r, size_t n); /* a pointer into the image */
uint8_t rt_read_u8(RtReader *r);
uint32_t rt_read_u32(RtReader *r);
int64_t rt_read_i64(RtReader *r);
double rt_read_f64(RtReader *r);
const char *rt_read_str(RtReader *r); /* a copy (alloc), NUL-terminated */
void rt_read_align(RtReader *r, size_t align);
/* A count of elements of `size` bytes that must be <= max and fit in the rest of the image. */
int64_t rt_read_count(RtReader *r, int64_t max, size_t size);
/* n zeroed elements of size bytes from the reader's allocator (NULL + bad on failure). */
void *rt_reader_alloc(RtReader *r, size_t n, size_t size);

#endif
