/* `dflow check FILE`: parse, resolve names, type- and shape-check a program
 * without running it. Data files are read only for their headers (shapes),
 * so checking is fast even for large data sets. */
#include "cli.h"

static void help(void) {
    fputs("usage: dflow check FILE [--set KEY=VALUE]...\n"
          "\n"
          "Parses FILE, checks names, types and static shapes, and lowers it to IR\n"
          "without running anything (data files: headers only). Errors are printed as\n"
          "FILE:LINE:COL: error: MESSAGE with the source line and a caret.\n"
          "\n"
          "options:\n"
          "  --set KEY=VALUE   override a config value (repeatable; type-checked)\n"
          "  -h, --help        show this help\n"
          "\n"
          "exit status: 0 the program is well formed, 1 errors were found\n",
          stdout);
}

int cmd_check(int argc, char **argv) {
    CliArgs a;
    CliParse p = cli_parse_args("check", argc, argv, OPT_SET, &a);
    if (p != CLI_PARSE_OK) {
        cli_args_free(&a);
        if (p == CLI_PARSE_HELP) help();
        return p == CLI_PARSE_HELP ? 0 : 1;
    }
    CliCompile c;
    bool ok = cli_compile(&c, &a, true);
    if (ok) printf("%s: ok\n", a.file);
    cli_compile_free(&c);
    cli_args_free(&a);
    return ok ? 0 : 1;
}
