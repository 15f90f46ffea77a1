/* test_curve.c: CURVE security (proto_curve.h) over real tcp sockets: key files and their
 * modes; a client with an admitted key delivers; a client with an unknown key, or a
 * plain (non-CURVE) client, delivers nothing while the receiver goes on serving
 * admitted clients. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto_curve.h"
#include "proto_zmq.h"
#include "test_loader_fixture.h"

static char *dir, ep[128];
static void *sctx, *cctx, *pull;
static ProtoZap *zap;
static ProtoCurve server;

static void key_path(char *out, size_t cap, const char *name, const char *ext) {
    snprintf(out, cap, "%s/%s.%s", dir, name, ext);
}

static void keygen(const char *name) {
    char base[512];
    StkErr err;
    snprintf(base, sizeof base, "%s/%s", dir, name);
    cr_assert_eq(proto_curve_keygen(base, &err), 0, "%s", err.msg);
}

/* The allow-list: dir/allow holds the public key of "good" only. */
static void setup(void) {
    StkErr err;
    dir = fx_tmpdir();
    keygen("server"), keygen("good"), keygen("stranger");
    char allow[512], from[512], to[600], cmd[1400];
    snprintf(allow, sizeof allow, "%s/allow", dir);
    cr_assert_eq(mkdir(allow, 0755), 0);
    key_path(from, sizeof from, "good", "pub");
    snprintf(to, sizeof to, "%s/good.pub", allow);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    cr_assert_eq(system(cmd), 0);
    key_path(from, sizeof from, "server", "key");
    cr_assert_eq(proto_curve_open(&server, from, NULL, &err), 0, "%s", err.msg);
    sctx = zmq_ctx_new(), cctx = zmq_ctx_new();
    cr_assert(sctx && cctx);
    cr_assert_eq(proto_zap_start(&zap, sctx, "test", NULL, allow, &err), 0, "%s", err.msg);
    cr_assert_eq(proto_zap_keys(zap), 1);
    pull = zmq_socket(sctx, ZMQ_PULL);
    cr_assert(pull);
    cr_assert_eq(proto_zmq_setup(pull, 10, 10, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(proto_curve_server(pull, &server, &err), 0, "%s", err.msg);
    cr_assert_eq(zmq_bind(pull, "tcp://127.0.0.1:*"), 0, "%s", zmq_strerror(zmq_errno()));
    size_t n = sizeof ep;
    cr_assert_eq(zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, ep, &n), 0);
}

static void teardown(void) {
    zmq_close(pull);
    proto_zap_stop(zap); /* before the context ends: its socket is in it */
    zmq_ctx_term(sctx);
    zmq_ctx_term(cctx);
    fx_rmtree(dir);
    free(dir);
}

TestSuite(curve, .init = setup, .fini = teardown, .timeout = 30);

/* A PUSH from the client context with keypair `name` (NULL: plain, no CURVE). */
static void *client(const char *name) {
    void *s = zmq_socket(cctx, ZMQ_PUSH);
    int linger = 0;
    cr_assert(s && !zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger));
    if (name) {
        char key[512], srv[512];
        ProtoCurve c;
        StkErr err;
        key_path(key, sizeof key, name, "key");
        key_path(srv, sizeof srv, "server", "pub");
        cr_assert_eq(proto_curve_open(&c, key, srv, &err), 0, "%s", err.msg);
        cr_assert_eq(proto_curve_client(s, &c, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(zmq_connect(s, ep), 0);
    return s;
}

/* What arrives at the server within ms: the text, or "" for nothing. */
static void receive(char *buf, size_t cap, int ms) {
    zmq_pollitem_t it = {pull, 0, ZMQ_POLLIN, 0};
    buf[0] = 0;
    if (zmq_poll(&it, 1, ms) <= 0) return;
    int n = zmq_recv(pull, buf, cap - 1, ZMQ_DONTWAIT);
    buf[n > 0 ? n : 0] = 0;
}

Test(curve, an_admitted_client_delivers) {
    void *c = client("good");
    cr_assert_eq(zmq_send(c, "hello", 5, ZMQ_DONTWAIT), 5);
    char got[64];
    receive(got, sizeof got, 5000);
    cr_assert_str_eq(got, "hello");
    cr_assert_eq(proto_zap_denied(zap), 0);
    zmq_close(c);
}

/* Refused at the handshake; the admitted client that comes next is still served. */
static void refused_then_served(void *bad, uint64_t min_denied) {
    zmq_send(bad, "intruder", 8, ZMQ_DONTWAIT); /* queued until a handshake that never ends */
    char got[64];
    receive(got, sizeof got, 1500);
    cr_assert_str_eq(got, "", "the refused client delivered \"%s\"", got);
    cr_assert_geq(proto_zap_denied(zap), min_denied);
    void *good = client("good");
    cr_assert_eq(zmq_send(good, "hello", 5, ZMQ_DONTWAIT), 5);
    receive(got, sizeof got, 5000);
    cr_assert_str_eq(got, "hello", "the receiver goes on after a refusal");
    zmq_close(good), zmq_close(bad);
}

Test(curve, a_client_with_an_unknown_key_delivers_nothing) {
    refused_then_served(client("stranger"), 1);
}

/* A plain client fails the mechanism handshake before ZAP is asked: nothing to count. */
Test(curve, a_plain_client_delivers_nothing) { refused_then_served(client(NULL), 0); }

Test(curve, key_files_have_the_right_modes_and_are_not_overwritten) {
    char key[512], pub[512], base[512];
    struct stat st;
    key_path(key, sizeof key, "good", "key"), key_path(pub, sizeof pub, "good", "pub");
    cr_assert_eq(stat(key, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "secret key mode %o", st.st_mode & 0777);
    cr_assert_eq(stat(pub, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644, "public key mode %o", st.st_mode & 0777);
    size_t n;
    uint8_t *raw = fx_read(pub, &n);
    cr_assert(raw);
    char *text = strndup((const char *)raw, n); /* fx_read does not NUL-terminate */
    free(raw);
    cr_assert(text && !strstr(text, "secret"), "the public file holds no secret");
    free(text);
    StkErr err;
    snprintf(base, sizeof base, "%s/good", dir);
    cr_assert_eq(proto_curve_keygen(base, &err), -1, "an existing key is kept");
    cr_assert(strstr(err.msg, "not overwritten"), "%s", err.msg);
}

Test(curve, keygen_makes_a_secret_under_a_permissive_umask_private) {
    char base[512], key[512];
    struct stat st;
    StkErr err;
    mode_t old = umask(0);
    snprintf(base, sizeof base, "%s/loose", dir);
    int rc = proto_curve_keygen(base, &err);
    umask(old);
    cr_assert_eq(rc, 0, "%s", err.msg);
    key_path(key, sizeof key, "loose", "key");
    cr_assert_eq(stat(key, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
}

Test(curve, a_readable_secret_key_is_refused) {
    char key[512], p[41], s[41];
    StkErr err;
    key_path(key, sizeof key, "good", "key");
    cr_assert_eq(proto_curve_load_secret(key, p, s, &err), 0, "%s", err.msg);
    cr_assert_eq(chmod(key, 0640), 0);
    cr_assert_eq(proto_curve_load_secret(key, p, s, &err), -1);
    cr_assert(strstr(err.msg, key) && strstr(err.msg, "mode 0640") && strstr(err.msg, "chmod 600"),
              "%s", err.msg);
}

Test(curve, a_public_file_is_not_a_secret_key_and_a_public_key_is_read_from_either) {
    char key[512], pub[512], p1[41], p2[41], s[41];
    StkErr err;
    key_path(key, sizeof key, "good", "key"), key_path(pub, sizeof pub, "good", "pub");
    cr_assert_eq(chmod(pub, 0600), 0); /* past the mode check: the content is refused */
    cr_assert_eq(proto_curve_load_secret(pub, p1, s, &err), -1);
    cr_assert(strstr(err.msg, "no secret-key"), "%s", err.msg);
    cr_assert_eq(proto_curve_load_public(pub, p1, &err), 0, "%s", err.msg);
    cr_assert_eq(proto_curve_load_public(key, p2, &err), 0, "%s", err.msg);
    cr_assert_str_eq(p1, p2);
}

Test(curve, a_damaged_key_file_is_refused_by_name) {
    char bad[512], p[41];
    StkErr err;
    snprintf(bad, sizeof bad, "%s/bad.pub", dir);
    FILE *f = fopen(bad, "w");
    cr_assert(f);
    fputs("public-key = \"too short\"\n", f);
    fclose(f);
    cr_assert_eq(proto_curve_load_public(bad, p, &err), -1);
    cr_assert(strstr(err.msg, bad) && strstr(err.msg, "no public-key"), "%s", err.msg);
}

Test(curve, a_group_writable_allow_list_is_refused) {
    char allow[512];
    snprintf(allow, sizeof allow, "%s/allow", dir);
    cr_assert_eq(chmod(allow, 0775), 0);
    void *ctx = zmq_ctx_new();
    ProtoZap *z;
    StkErr err;
    cr_assert_eq(proto_zap_start(&z, ctx, "test", NULL, allow, &err), -1);
    cr_assert(strstr(err.msg, allow) && strstr(err.msg, "writable by group or others"), "%s", err.msg);
    zmq_ctx_term(ctx);
}

/* The control and checkpoint sockets are PUBs: an eavesdropper without the handshake
 * hears nothing, while an admitted subscriber hears every message. */
Test(curve, a_plain_subscriber_hears_nothing_an_admitted_one_everything) {
    StkErr err;
    void *pub = zmq_socket(sctx, ZMQ_PUB);
    cr_assert(pub);
    cr_assert_eq(proto_zmq_setup(pub, 100, 100, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(proto_curve_server(pub, &server, &err), 0, "%s", err.msg);
    cr_assert_eq(zmq_bind(pub, "tcp://127.0.0.1:*"), 0);
    char pep[128];
    size_t n = sizeof pep;
    cr_assert_eq(zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, pep, &n), 0);
    void *subs[2];
    for (int i = 0; i < 2; i++) {
        subs[i] = zmq_socket(cctx, ZMQ_SUB);
        cr_assert(subs[i] && !zmq_setsockopt(subs[i], ZMQ_SUBSCRIBE, "", 0));
    }
    char key[512], srv[512];
    ProtoCurve c;
    key_path(key, sizeof key, "good", "key"), key_path(srv, sizeof srv, "server", "pub");
    cr_assert_eq(proto_curve_open(&c, key, srv, &err), 0, "%s", err.msg);
    cr_assert_eq(proto_curve_client(subs[0], &c, &err), 0, "%s", err.msg);
    for (int i = 0; i < 2; i++) cr_assert_eq(zmq_connect(subs[i], pep), 0);
    int heard[2] = {0, 0};
    for (int t = 0; t < 60 && !heard[0]; t++) { /* PUB drops until a subscriber has joined */
        cr_assert_eq(zmq_send(pub, "shutdown", 8, 0), 8);
        zmq_pollitem_t it[2] = {{subs[0], 0, ZMQ_POLLIN, 0}, {subs[1], 0, ZMQ_POLLIN, 0}};
        zmq_poll(it, 2, 50);
        for (int i = 0; i < 2; i++) {
            char buf[16];
            while (zmq_recv(subs[i], buf, sizeof buf, ZMQ_DONTWAIT) > 0) heard[i]++;
        }
    }
    cr_assert(heard[0] > 0, "the admitted subscriber heard nothing");
    cr_assert_eq(heard[1], 0, "the plain subscriber heard %d messages", heard[1]);
    int linger = 0;
    for (int i = 0; i < 2; i++) zmq_setsockopt(subs[i], ZMQ_LINGER, &linger, sizeof linger), zmq_close(subs[i]);
    zmq_close(pub);
}
