/* `koinon devnet`: runs one koinond per validator of a devnet directory and
 * supervises them until Ctrl-C.
 *
 * SIGINT, SIGTERM and SIGCHLD stay blocked except inside sigsuspend(), so a
 * signal is never lost between checking the flags and going to sleep. */
#include "tools/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEVNET_NODES_MAX 64 /* the validator limit of a genesis */
#define DEVNET_NAME_MAX 63
#define DEVNET_STOP_MS 10000
#define DEVNET_POLL_MS 100

typedef struct devnet_node {
    char name[DEVNET_NAME_MAX + 1];
    char api[64];
    char config[CLI_PATH_MAX];
    char log[CLI_PATH_MAX];
    pid_t pid; /* 0 when not running */
} devnet_node;

typedef struct devnet {
    const char *dir;
    char koinond[CLI_PATH_MAX];
    uint32_t n_nodes;
    uint32_t running;
    devnet_node nodes[DEVNET_NODES_MAX];
} devnet;

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t child_changed;

static void on_signal(int sig)
{
    if (sig == SIGCHLD)
        child_changed = 1;
    else
        stop_signal = sig;
}

/* ---------------------------------------------------------------- layout */

/* A validator name becomes a directory name: nothing that walks elsewhere. */
static bool safe_name(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= DEVNET_NAME_MAX && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/');
}

static int load_node(devnet *dn, const json_t *v, uint32_t i)
{
    devnet_node *node = &dn->nodes[i];
    const char *name = cli_jstr(v, "name", "");
    if (!safe_name(name)) return cli_fail(KN_ECONFIG, "validator %u has no usable name", i);
    snprintf(node->name, sizeof node->name, "%s", name);
    snprintf(node->api, sizeof node->api, "%s", cli_jstr(v, "api_address", "?"));
    if (snprintf(node->config, sizeof node->config, "%s/%s/node.json", dn->dir, name) >=
            (int)sizeof node->config ||
        snprintf(node->log, sizeof node->log, "%s/%s/koinond.log", dn->dir, name) >=
            (int)sizeof node->log)
        return cli_fail(KN_EINVAL, "path under %s is too long", dn->dir);
    if (access(node->config, R_OK) != 0)
        return cli_fail(KN_ECONFIG, "cannot read %s: %s", node->config, strerror(errno));
    return 0;
}

static int load_nodes(devnet *dn)
{
    char path[CLI_PATH_MAX];
    snprintf(path, sizeof path, "%s/genesis.json", dn->dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) return cli_fail(KN_ECONFIG, "cannot read %s: %s", path, jerr.text);
    const json_t *vals = json_object_get(root, "validators");
    size_t n = json_array_size(vals);
    int rc = 0;
    if (n == 0 || n > DEVNET_NODES_MAX)
        rc = cli_fail(KN_ECONFIG, "%s must list 1 to %d validators", path, DEVNET_NODES_MAX);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = load_node(dn, json_array_get(vals, i), (uint32_t)i);
    dn->n_nodes = rc ? 0 : (uint32_t)n;
    json_decref(root);
    return rc;
}

/* The koinond that sits beside this koinon binary. */
static int default_koinond(char *out, size_t cap)
{
    char self[CLI_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) return cli_fail(KN_EIO, "cannot find koinon's own path: %s", strerror(errno));
    self[n] = '\0';
    if (snprintf(out, cap, "%s/koinond", dirname(self)) >= (int)cap)
        return cli_fail(KN_EINVAL, "path of koinond is too long");
    return 0;
}

/* ---------------------------------------------------------------- processes */

static void describe_status(char *out, size_t cap, int status)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "status signal %d, %s", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(out, cap, "status 0x%x", (unsigned)status);
}

/* In the child: output to the log, the caller's signal mask back, then koinond. */
static _Noreturn void exec_node(const devnet *dn, const devnet_node *node, int log_fd,
                                const sigset_t *orig_mask)
{
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    sigprocmask(SIG_SETMASK, orig_mask, NULL);
    char *const args[] = {(char *)"koinond", (char *)"--config", (char *)node->config, NULL};
    execv(dn->koinond, args);
    dprintf(STDERR_FILENO, "koinon: cannot run %s: %s (io_error)\n", dn->koinond, strerror(errno));
    _exit(127);
}

static int start_node(devnet *dn, devnet_node *node, const sigset_t *orig_mask)
{
    int log_fd = open(node->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return cli_fail(KN_EIO, "cannot open %s: %s", node->log, strerror(errno));
    dprintf(log_fd, "--- koinon devnet: starting %s --config %s at %llu ms\n", dn->koinond,
            node->config, (unsigned long long)kn_now_ms());
    pid_t pid = fork();
    if (pid == 0) exec_node(dn, node, log_fd, orig_mask);
    int saved = errno;
    close(log_fd);
    if (pid < 0) return cli_fail(KN_EIO, "cannot start %s: %s", node->name, strerror(saved));
    node->pid = pid;
    dn->running++;
    return 0;
}

/* Collects every child that has exited; reports them unless stopping. */
static void reap(devnet *dn, bool report)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (uint32_t i = 0; i < dn->n_nodes; i++) {
            devnet_node *node = &dn->nodes[i];
            if (node->pid != pid) continue;
            node->pid = 0;
            dn->running--;
            if (!report) break;
            char how[96];
            describe_status(how, sizeof how, status);
            fprintf(stderr, "koinon: node %s exited (%s)\n", node->name, how);
            break;
        }
    }
}

static void stop_all(devnet *dn)
{
    for (uint32_t i = 0; i < dn->n_nodes; i++)
        if (dn->nodes[i].pid > 0) kill(dn->nodes[i].pid, SIGTERM);
    uint64_t deadline_ms = kn_mono_ms() + DEVNET_STOP_MS;
    const struct timespec poll = {0, DEVNET_POLL_MS * 1000000L};
    for (reap(dn, false); dn->running > 0 && kn_mono_ms() < deadline_ms; reap(dn, false))
        nanosleep(&poll, NULL);
    for (uint32_t i = 0; i < dn->n_nodes; i++) {
        devnet_node *node = &dn->nodes[i];
        if (node->pid <= 0) continue;
        fprintf(stderr, "koinon: node %s did not stop within %d s; killing it\n", node->name,
                DEVNET_STOP_MS / 1000);
        kill(node->pid, SIGKILL);
        waitpid(node->pid, NULL, 0);
        node->pid = 0;
        dn->running--;
    }
}

static void install_handlers(sigset_t *orig_mask, sigset_t *wait_mask)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);

    sigset_t ours;
    sigemptyset(&ours);
    sigaddset(&ours, SIGINT);
    sigaddset(&ours, SIGTERM);
    sigaddset(&ours, SIGCHLD);
    sigprocmask(SIG_BLOCK, &ours, orig_mask);
    *wait_mask = *orig_mask;
    sigdelset(wait_mask, SIGINT);
    sigdelset(wait_mask, SIGTERM);
    sigdelset(wait_mask, SIGCHLD);
}

static int supervise(devnet *dn)
{
    sigset_t orig_mask, wait_mask;
    install_handlers(&orig_mask, &wait_mask);
    for (uint32_t i = 0; i < dn->n_nodes; i++) {
        if (start_node(dn, &dn->nodes[i], &orig_mask) == 0) continue;
        stop_all(dn);
        return CLI_EXIT_FAIL;
    }
    for (uint32_t i = 0; i < dn->n_nodes; i++) {
        const devnet_node *node = &dn->nodes[i];
        printf("%-10s http://%-15s  log: %s\n", node->name, node->api, node->log);
    }
    printf("devnet running; Ctrl-C stops it\n");
    fflush(stdout);

    while (dn->running > 0) {
        while (!stop_signal && !child_changed) sigsuspend(&wait_mask);
        if (stop_signal) {
            printf("stopping devnet (%s)\n", strsignal(stop_signal));
            fflush(stdout);
            stop_all(dn);
            printf("devnet stopped\n");
            return CLI_EXIT_OK;
        }
        child_changed = 0;
        reap(dn, true);
    }
    return cli_fail(KN_ECLOSED, "every node has exited; see the logs under %s", dn->dir);
}

static const char devnet_usage[] =
    "usage: koinon devnet [--validators N] [--dir DIR] [--base-port P] [--koinond PATH]\n";
static const char devnet_help[] =
    "usage: koinon devnet [--validators N] [--dir DIR] [--base-port P] [--koinond PATH]\n\n"
    "Runs a local devnet: one koinond per validator of DIR/genesis.json, each with\n"
    "DIR/<city>/node.json and its output appended to DIR/<city>/koinond.log. When\n"
    "DIR/genesis.json does not exist it is created first, as by `koinon init`;\n"
    "otherwise the existing keys and data are reused. Ctrl-C stops every node.\n\n"
    "  --validators N    validators of a new devnet, 1 to 7 (default 4)\n"
    "  --dir DIR         devnet directory (default ./devnet)\n"
    "  --base-port P     first API port of a new devnet (default 8700)\n"
    "  --koinond PATH    the node binary (default: koinond beside koinon)\n"
    "  --help            show this help\n";

/* Creates the devnet directory unless it has a genesis already. */
static int prepare_dir(const cli_init_params *p, bool sizing_given)
{
    char genesis[CLI_PATH_MAX];
    if (snprintf(genesis, sizeof genesis, "%s/genesis.json", p->dir) >= (int)sizeof genesis)
        return cli_fail(KN_EINVAL, "path %s is too long", p->dir);
    struct stat st;
    if (stat(genesis, &st) == 0) {
        printf("reusing %s%s\n", genesis,
               sizing_given ? " (--validators and --base-port apply to new devnets only)" : "");
        return 0;
    }
    if (cli_init_devnet(p)) return CLI_EXIT_FAIL;
    printf("created %s with %u validators\n", p->dir, p->validators);
    return 0;
}

int cmd_devnet(int argc, char **argv)
{
    static const struct option opts[] = {{"validators", required_argument, NULL, 'n'},
                                         {"dir", required_argument, NULL, 'd'},
                                         {"base-port", required_argument, NULL, 'p'},
                                         {"koinond", required_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    cli_init_params p = {"devnet", CLI_VALIDATORS_DEFAULT, CLI_CHAIN_ID_DEFAULT,
                         CLI_BASE_PORT_DEFAULT};
    const char *koinond = NULL;
    bool sizing_given = false;
    uint64_t v;
    int c;
    while ((c = getopt_long(argc, argv, ":n:d:p:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': p.dir = optarg; break;
        case 'k': koinond = optarg; break;
        case 'n':
            if (cli_parse_u64(optarg, 1, CLI_VALIDATORS_MAX, &v))
                return cli_usage_error(devnet_usage, "--validators must be 1 to %d",
                                       CLI_VALIDATORS_MAX);
            p.validators = (uint32_t)v;
            sizing_given = true;
            break;
        case 'p':
            if (cli_parse_u64(optarg, 1, 65535, &v))
                return cli_usage_error(devnet_usage, "--base-port must be a port number");
            p.base_port = (uint32_t)v;
            sizing_given = true;
            break;
        case 'h': return cli_help(devnet_help);
        default: return cli_bad_option(c, argv, devnet_usage);
        }
    }
    if (optind != argc)
        return cli_usage_error(devnet_usage, "unexpected argument '%s'", argv[optind]);
    if (cli_init_check(&p, devnet_usage)) return CLI_EXIT_USAGE;

    static devnet dn; /* about 0.5 MB of paths: keep it off the stack */
    dn.dir = p.dir;
    if (koinond && snprintf(dn.koinond, sizeof dn.koinond, "%s", koinond) >= (int)sizeof dn.koinond)
        return cli_fail(KN_EINVAL, "--koinond path is too long");
    if (!koinond && default_koinond(dn.koinond, sizeof dn.koinond)) return CLI_EXIT_FAIL;
    if (access(dn.koinond, X_OK) != 0)
        return cli_fail(KN_EIO, "cannot run %s: %s", dn.koinond, strerror(errno));
    if (prepare_dir(&p, sizing_given) || load_nodes(&dn)) return CLI_EXIT_FAIL;
    return supervise(&dn);
}
