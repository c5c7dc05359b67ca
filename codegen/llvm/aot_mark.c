/* Finding the mark of a built executable (aot_mark.h): a bounds-checked walk
 * over the ELF64 section headers and the section-name string table. */
#include "aot_mark.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint64_t le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static bool read_at(FILE *f, uint64_t off, void *buf, size_t n) {
    return off <= INT64_MAX && fseek(f, (long)off, SEEK_SET) == 0 && fread(buf, 1, n, f) == n;
}

static bool has_section(FILE *f) {
    unsigned char eh[64];
    if (!read_at(f, 0, eh, sizeof eh)) return false;
    static const unsigned char elf_magic[4] = {0x7f, 'E', 'L', 'F'};
    if (memcmp(eh, elf_magic, 4) != 0 || eh[4] != 2 || eh[5] != 1) return false;
    uint64_t shoff = le(eh + 0x28, 8);
    unsigned shentsize = (unsigned)le(eh + 0x3A, 2), shnum = (unsigned)le(eh + 0x3C, 2),
             shstrndx = (unsigned)le(eh + 0x3E, 2);
    if (shentsize < 64 || shnum == 0 || shstrndx >= shnum) return false;
    unsigned char sh[64];
    if (!read_at(f, shoff + (uint64_t)shstrndx * shentsize, sh, sizeof sh)) return false;
    uint64_t stroff = le(sh + 0x18, 8), strsize = le(sh + 0x20, 8);
    const size_t want = sizeof AOT_MARK_SECTION; /* with its NUL */
    for (unsigned i = 0; i < shnum; i++) {
        if (!read_at(f, shoff + (uint64_t)i * shentsize, sh, sizeof sh)) return false;
        uint64_t name = le(sh, 4);
        char got[sizeof AOT_MARK_SECTION];
        if (name + want > strsize || !read_at(f, stroff + name, got, want)) continue;
        if (memcmp(got, AOT_MARK_SECTION, want) == 0) return true;
    }
    return false;
}

bool aot_is_built_executable(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool yes = has_section(f);
    fclose(f);
    return yes;
}
