/* koinond: the Koinon validator daemon. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: koinond --config FILE\n"
               "Runs one Koinon validator until SIGINT or SIGTERM.\n"
               "  --config FILE  the node's node.json (see README: Configuration)\n"
               "  --version      print the version\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': config = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': puts("koinond 0.1.0"); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!config) {
        usage(stderr);
        return 2;
    }
    /* A peer or client that goes away mid-write must cost an error, not the
     * process. */
    signal(SIGPIPE, SIG_IGN);
    if (kn_crypto_init()) {
        fprintf(stderr, "koinond: cannot initialise libsodium\n");
        return 1;
    }
    static node_config cfg;
    if (node_config_load(config, &cfg)) return 1;
    kn_log_setup(cfg.log_level, cfg.log_json);
    if (kn_log_modules(cfg.log_modules)) {
        fprintf(stderr, "koinond: log_modules must look like \"net=debug,cons=warn\"\n");
        return 1;
    }
    if (cfg.log_file[0] && !freopen(cfg.log_file, "a", stderr)) {
        fprintf(stdout, "koinond: cannot open log file %s\n", cfg.log_file);
        return 1;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    int rc = node_run(&cfg);
    kn_keypair_wipe(&cfg.key);
    return rc;
}
