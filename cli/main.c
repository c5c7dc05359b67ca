/* `dflow`: dispatches to a subcommand (check, ir, run, build, sweep, plot).
 *
 * Exit status: 0 success, 1 any user error (unknown command or flag, compile
 * error, run-time error, standard output that could not be written), 130
 * when a run was interrupted with Ctrl-C. */
#include <string.h>

#include "cli.h"
#include "runtime/outfile.h"

static void usage(FILE *f) {
    fputs("usage: dflow <command> [options] FILE\n"
          "\n"
          "A compiler and runtime for machine-learning research programs (.dfl).\n"
          "\n"
          "commands:\n"
          "  check FILE     parse, type and shape check a program; errors with line:col\n"
          "  ir FILE        print the program's IR, before or after a pass (--after PASS)\n"
          "  run FILE       run a program: logs to stdout, metrics.csv and summary.json to --out\n"
          "  build FILE -o PROG\n"
          "                 compile a program into a standalone executable (no LLVM needed)\n"
          "  sweep FILE --grid KEY=V1,V2 --seeds 0..5 --out DIR\n"
          "                 run a grid of config values over seeds; a table of the results\n"
          "  plot RUN... -o OUT.svg\n"
          "                 line plots of metrics.csv columns, or a heat map of a .npy\n"
          "\n"
          "options:\n"
          "  -h, --help     show this help (also after a command: dflow run --help)\n"
          "  --version      show the version\n"
          "\n"
          "exit status: 0 success, 1 error, 130 interrupted (Ctrl-C)\n",
          f);
}

static int dispatch(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("dflow %s\n", DFLOW_VERSION);
        return 0;
    }
    if (strcmp(cmd, "check") == 0) return cmd_check(argc - 2, argv + 2);
    if (strcmp(cmd, "ir") == 0) return cmd_ir(argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "build") == 0) return cmd_build(argc - 2, argv + 2);
    if (strcmp(cmd, "plot") == 0) return cmd_plot(argc - 2, argv + 2);
    if (strcmp(cmd, "sweep") == 0) return cmd_sweep(argc - 2, argv + 2);
    if (cmd[0] == '-')
        fprintf(stderr, "dflow: unknown option '%s'\n", cmd);
    else
        fprintf(stderr, "dflow: unknown command '%s'\n", cmd);
    fputs("Try 'dflow --help' for the commands.\n", stderr);
    return 1;
}

int main(int argc, char **argv) {
    int rc = dispatch(argc, argv);
    /* output that never reached stdout is a failed command */
    if (!rt_out_finish_stdout("dflow") && rc == 0) rc = 1;
    return rc;
}
