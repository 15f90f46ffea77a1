/* test_run_net.c: stoker-run's sockets beyond the private ipc directory: loopback tcp;
 * a remote loader over tcp admitted by its CURVE key only (a stranger's key and a plain
 * connection refused, logged, their batches never taken); binding beyond loopback
 * refused without CURVE; a server key file others can read refused. */
#include <sys/stat.h>

#include "test_run_fixture.h"

TestSuite(run_net, .init = setup, .fini = teardown, .timeout = 90);

Test(run_net, runs_on_loopback_tcp_when_asked) {
    char port[16];
    snprintf(port, sizeof port, "%d", 20000 + (int)(getpid() % 20000) * 2 % 40000);
    const char *tcp[] = {"--tcp", port, NULL};
    start_run("1", tcp);
    cr_assert_eq(px_wait(sup, 60000), 0);
    sup = 0;
    char *c = run_file("config.json"), *j = run_file("metrics.jsonl");
    cr_assert(strstr(c, "\"data\": \"tcp://127.0.0.1:"), "%s", c);
    cr_assert(strstr(j, "\"kind\":\"eval\",\"epoch\":0,"), "%s", j);
    free(c), free(j);
}

/* A tcp port of this test process's own: 4 consecutive ones from base + a pid share. */
static int test_port(int base) { return base + (int)(getpid() % 2000) * 4; }

/* root/keys/{server,good,stranger}.{key,pub} by stoker-data keygen; root/allow holds
 * good.pub only. */
static void make_keys(char *keys, size_t cap, char *allow, size_t acap) {
    snprintf(keys, cap, "%s/keys", root);
    snprintf(allow, acap, "%s/allow", root);
    const char *argv[] = {STOKER_BIN_DIR "/stoker-data", "keygen", keys, "server", "good",
                          "stranger", NULL};
    cr_assert_eq(px_wait(px_spawn(argv, log_), 10000), 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -m 755 '%s' && cp '%s/good.pub' '%s/'", allow, keys, allow);
    cr_assert_eq(system(cmd), 0);
}

/* Loader 2 of 3, as the run printed it for a remote host, here on loopback with keypair
 * name (NULL: no CURVE). */
static pid_t remote_loader(int port, const char *keys, const char *name, const char *log) {
    char ep[3][64], key[700], srv[700];
    for (int i = 0; i < 3; i++) snprintf(ep[i], sizeof ep[i], "tcp://127.0.0.1:%d", port + (i ? i + 1 : 0));
    snprintf(key, sizeof key, "%s/%s.key", keys, name ? name : "");
    snprintf(srv, sizeof srv, "%s/server.pub", keys);
    const char *argv[40] = {STOKER_BIN_DIR "/stoker-loader", "--data", ep[0], "--id", "2",
                            "--loaders", "3", "--batch", "16", "--epochs", "1", "--start-epoch",
                            "0", "--seed", "0", "--train-crop-size", "16", "--drop-last", "-q",
                            "--stay", "--control", ep[1], "--reports", ep[2]};
    int n = 24;
    if (name) argv[n++] = "--curve-key", argv[n++] = key, argv[n++] = "--curve-server-key", argv[n++] = srv;
    argv[n++] = data;
    argv[n] = NULL;
    return px_spawn(argv, log);
}

/* The wrong-key and plain loaders go first: had either been let in, its batches would be
 * taken and the admitted loader's dropped as duplicates. */
Test(run_net, a_remote_loader_delivers_over_curve_only_with_an_admitted_key) {
    char keys[600], allow[600], srvkey[700], port[16], rogue_log[700];
    make_keys(keys, sizeof keys, allow, sizeof allow);
    snprintf(srvkey, sizeof srvkey, "%s/server.key", keys);
    snprintf(rogue_log, sizeof rogue_log, "%s/rogue.log", root);
    int p = test_port(30000);
    snprintf(port, sizeof port, "%d", p);
    const char *args[] = {"--tcp", port, "--bind", "*", "--curve-key", srvkey, "--curve-clients",
                          allow, "--remote-loaders", "1", NULL};
    start_run("1", args);
    wait_log("--id 2 --loaders 3 --batch 16", 30000);
    wait_log("step 8/16", 30000); /* the local loaders' two shards of three, at most */
    pid_t stranger = strays[0] = remote_loader(p, keys, "stranger", rogue_log);
    pid_t plain = strays[1] = remote_loader(p, keys, NULL, rogue_log);
    wait_log("its CURVE key is not in the allow-list", 10000);
    sleep(1);
    char *j = run_file("metrics.jsonl");
    cr_assert(!strstr(j, "\"kind\":\"epoch\""), "the epoch ended without loader 2:\n%s", j);
    free(j);
    pid_t good = strays[2] = remote_loader(p, keys, "good", rogue_log);
    int rc = px_wait(sup, 60000);
    sup = 0;
    kill(stranger, SIGKILL), kill(plain, SIGKILL);
    px_wait(stranger, 5000), px_wait(plain, 5000);
    strays[0] = strays[1] = 0;
    cr_assert_eq(px_wait(good, 10000), 0, "the admitted loader was told to stop");
    strays[2] = 0;
    char *text = px_slurp(log_);
    cr_assert_eq(rc, 0, "%s", text);
    j = run_file("metrics.jsonl");
    cr_assert(strstr(j, "\"samples\":256.0,\"samples_lost\":0.0,\"samples_repeated\":0.0,"
                        "\"duplicates_dropped\":0.0,\"rejected\":0.0"), "%s", j);
    cr_assert(strstr(j, "\"kind\":\"eval\",\"epoch\":0,"), "the evaluator, a CURVE client too:\n%s", j);
    cr_assert(strstr(text, "stoker-train: refused a connection from 127.0.0.1") &&
              strstr(text, "connections refused (CURVE keys not admitted)"), "%s", text);
    char *cfg = run_file("config.json");
    cr_assert(strstr(cfg, "\"remote_loaders\": 1") && strstr(cfg, "\"public_key\""), "%s", cfg);
    free(text), free(j), free(cfg);
}

Test(run_net, binding_beyond_loopback_needs_curve) {
    char port[16];
    snprintf(port, sizeof port, "%d", test_port(38000));
    const char *args[] = {"--tcp", port, "--bind", "0.0.0.0", NULL};
    char *text = refused(args, 2);
    cr_assert(strstr(text, "--bind 0.0.0.0 is not a loopback address") &&
              strstr(text, "needs CURVE: --curve-key FILE"), "%s", text);
    free(text);
}

Test(run_net, a_secret_key_others_can_read_is_refused) {
    char keys[600], allow[600], srvkey[700], port[16];
    make_keys(keys, sizeof keys, allow, sizeof allow);
    snprintf(srvkey, sizeof srvkey, "%s/server.key", keys);
    cr_assert_eq(chmod(srvkey, 0644), 0);
    snprintf(port, sizeof port, "%d", test_port(46000));
    const char *args[] = {"--tcp", port, "--curve-key", srvkey, NULL};
    char *text = refused(args, 1);
    cr_assert(strstr(text, srvkey) && strstr(text, "mode 0644") && strstr(text, "chmod 600"), "%s", text);
    free(text);
}

