/* The mark of an executable made by `dflow build`, and how to find it.
 *
 * `dflow build -o PROG` overwrites PROG only when it is an executable that
 * dflow built (never the program's source, nor any other file that happens
 * to have that name). The builder marks what it links with an ELF section
 * of its own, AOT_MARK_SECTION (written by the image's assembly file); the
 * check reads the file's ELF section table and looks for that section by
 * name. The name is looked for as a section, not as bytes anywhere in the
 * file, so that dflow itself (whose code holds the name as a string) is not
 * taken for a built executable. */
#ifndef DFLOW_CODEGEN_LLVM_AOT_MARK_H
#define DFLOW_CODEGEN_LLVM_AOT_MARK_H

#include <stdbool.h>

#define AOT_MARK_SECTION ".dflow_built"

/* True when path is a 64-bit little-endian ELF file with that section. */
bool aot_is_built_executable(const char *path);

#endif
