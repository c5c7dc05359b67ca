/* The persistent compile cache: object code of kernels by content key.
 *
 * A key is 128 bits of a hash over everything that decides a kernel's
 * machine code: its LLVM IR before optimisation, the target CPU name and
 * features, the code model, the optimisation level, the LLVM version and
 * this cache's format (llvm_kcomp.c builds it). An entry is one file
 * `<dir>/<32 hex digits>.obj`: a header (magic, format, key, size, a
 * checksum of the object and one of the header) and the object bytes.
 *
 * Safety: an entry is written to a temporary name in the same folder and
 * renamed, so concurrent runs see a whole entry or none; readers check the
 * header, the key and both checksums and treat any mismatch as a miss (the
 * caller then compiles, and overwrites the entry). The folder is bounded:
 * llvm_cache_trim deletes the least recently used entries (a hit refreshes
 * an entry's time) once the total passes the limit. Nothing here can make a
 * result differ: a hit returns exactly the bytes a miss would compile.
 *
 * The folder: $XDG_CACHE_HOME/dflow, else $HOME/.cache/dflow; DFLOW_NO_CACHE
 * (set and not "0") disables it; DFLOW_CACHE_MAX_MB bounds it (default 256).
 * Thread-safe: get/put may run on several compile threads at once. */
#ifndef DFLOW_CODEGEN_LLVM_CACHE_H
#define DFLOW_CODEGEN_LLVM_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t lo, hi;
} LlvmKey;

/* A 128-bit hash of n bytes continuing from h (start from llvm_key_seed()). */
LlvmKey llvm_key_seed(void);
LlvmKey llvm_key_add(LlvmKey h, const void *data, size_t n);
/* The same for a NUL-terminated string (its length is hashed too). */
LlvmKey llvm_key_add_str(LlvmKey h, const char *s);

typedef struct LlvmCache LlvmCache;

/* The default folder from the environment (see above), written into buf;
 * NULL when the cache is disabled or no folder can be named. */
const char *llvm_cache_default_dir(char *buf, size_t n);

/* A cache over folder dir (created when missing) holding at most max_bytes
 * (<= 0: the default). NULL when dir is NULL or cannot be created: the
 * caller then compiles everything (no error). */
LlvmCache *llvm_cache_open(const char *dir, int64_t max_bytes);
void llvm_cache_close(LlvmCache *c);

/* The object stored under key: a malloc'ed copy in *data (*n bytes), or
 * false for a miss, a damaged or foreign entry (c may be NULL). */
bool llvm_cache_get(LlvmCache *c, LlvmKey key, void **data, size_t *n);
/* Stores n bytes under key (temporary file + rename); false when it could
 * not (a full disk: the run goes on without the entry). */
bool llvm_cache_put(LlvmCache *c, LlvmKey key, const void *data, size_t n);
/* Deletes the least recently used entries until the folder holds at most
 * its limit, and temporary files older than an hour (crashed writers).
 * Returns how many files it deleted. */
int llvm_cache_trim(LlvmCache *c);

/* Hits, misses (including rejected entries) and rejected entries so far. */
void llvm_cache_counts(const LlvmCache *c, int64_t *hits, int64_t *misses, int64_t *rejected);

#endif
