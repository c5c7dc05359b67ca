/* ir_module_fingerprint: one 64-bit digest of what a compilation decided.
 *
 * The digest is FNV-1a over the module's printout (ir_module_print: slots
 * with kinds, names, dtypes and shapes; every graph; the host program with
 * loop bounds, train rows/batch/steps/every and log names) followed by the
 * bytes of every DATA slot, each tagged with its slot index. CONFIG slot
 * values are left out on purpose: the frontend compares the fingerprints of
 * two compilations that differ in one config to learn whether that config
 * reaches the program only through its slot (frontend/config_check.c). */
#include <stdio.h>
#include <stdlib.h>

#include "module.h"

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

bool ir_module_fingerprint(const Module *m, uint64_t *out) {
    if (!m || !out) return false;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return false;
    ir_module_print(m, f);
    if (fclose(f) != 0 || !text) {
        free(text);
        return false;
    }
    uint64_t h = fnv(FNV_OFFSET, text, len);
    free(text);
    for (int i = 0; i < m->nslots; i++) {
        const Slot *s = &m->slots[i];
        if (s->kind != SLOT_DATA) continue;
        int32_t tag = i;
        h = fnv(h, &tag, sizeof tag);
        if (!s->value) {
            h = fnv(h, "-", 1); /* not loaded (check-only) */
            continue;
        }
        uint64_t bytes = (uint64_t)rt_tensor_bytes(s->value);
        h = fnv(h, &bytes, sizeof bytes);
        if (bytes && s->value->data) h = fnv(h, s->value->data, (size_t)bytes);
    }
    *out = h;
    return true;
}
