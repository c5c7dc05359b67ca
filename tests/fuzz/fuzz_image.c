/* libFuzzer target: the program-image reader of built executables
 * (ir_image_read with the executable's own graph reader,
 * built_runner_read_graph) on any bytes.
 *
 * The input is copied to a buffer aligned as the executable's image is
 * (RT_IMAGE_ALIGN), since tensor payloads are used in place. Contract
 * checked: a Module or NULL with the reason, never a crash, a hang or a
 * runaway allocation; a Module read has its graphs bound to programs with
 * the signatures' input and output counts. Seeds: images of the seed
 * programs written by fuzz_image_seeds (scripts/fuzz.sh makes them). */
#include <stdlib.h>
#include <string.h>

#include "cli/built/runner.h"
#include "fuzz_util.h"
#include "ir/module_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t cap = (size + RT_IMAGE_ALIGN - 1) / RT_IMAGE_ALIGN * RT_IMAGE_ALIGN;
    uint8_t *img = aligned_alloc(RT_IMAGE_ALIGN, cap ? cap : RT_IMAGE_ALIGN);
    fz_check(img != NULL, "%s", "out of memory");
    if (size) memcpy(img, data, size);
    /* Make the header's CRC-32 right again, so the reader behind the
       checksum is fuzzed (the checksum alone is tested by test_build's
       bit flips); an input whose length field is wrong still stops there. */
    if (size >= IR_IMAGE_HEADER) {
        uint32_t c = ir_image_crc(img + IR_IMAGE_HEADER, size - IR_IMAGE_HEADER);
        for (int i = 0; i < 4; i++)
            img[20 + i] = (uint8_t)(c >> (8 * i));
    }
    Arena *a = arena_new();
    SourceSet *src = a ? source_set_new(a) : NULL;
    DiagList *d = src ? diag_list_new(a, src) : NULL;
    fz_check(d != NULL, "%s", "out of memory");
    BuiltRunner br = {.arena = a, .src = src};
    char err[512] = "";
    Module *m = ir_image_read(img, size, a, src, d, built_runner_read_graph, &br, err, sizeof err);
    if (!m) {
        fz_check(err[0] != 0, "%s", "ir_image_read failed without a reason");
    } else {
        for (int i = 0; i < br.n; i++)
            fz_check(br.graphs[i].g && br.graphs[i].prog.ninputs == br.graphs[i].g->ninputs &&
                         br.graphs[i].prog.noutputs == br.graphs[i].g->noutputs,
                     "graph %d does not match its signature", i);
    }
    built_runner_free(&br);
    arena_free(a);
    free(img);
    return 0;
}
