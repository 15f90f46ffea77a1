/* proto_curve.c: CURVE key files, socket options and the ZAP allow-list handler (see
 * proto_curve.h). */
#include "proto_curve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define KEY_FILE_MAX 65536 /* a key file is a few lines; anything larger is not one */
#define ZAP_ENDPOINT "inproc://zeromq.zap.01" /* fixed by the ZAP protocol (RFC 27) */
#define ZAP_POLL_MS 100    /* how often the handler looks at its stop flag */
#define ZAP_MAX_FRAMES 8   /* a CURVE request has 7 */
#define ZAP_LOGGED 10      /* refusals logged one by one; after that only counted */
#define ZAP_MAX_KEYS 4096

int proto_curve_available(StkErr *err) {
    if (zmq_has("curve")) return 0;
    int a, b, c;
    zmq_version(&a, &b, &c);
    return stk_errf(err, "this libzmq (%d.%d.%d) has no CURVE security (zmq_has(\"curve\") is "
                    "0): install one built with libsodium (Debian: libzmq5)", a, b, c);
}

/* Writes the whole buffer; -1 with errno. */
static int write_all(int fd, const char *buf, size_t n) {
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        buf += w, n -= (size_t)w;
    }
    return 0;
}

/* Creates path (never an existing file) with mode, holding the key lines. */
static int write_key_file(const char *path, mode_t mode, const char *pub, const char *sec,
                          StkErr *err) {
    char text[512];
    int n = snprintf(text, sizeof text, "# stoker CURVE %s (stoker-data keygen)%s\n"
                     "public-key = \"%s\"\n", sec ? "key pair" : "public key",
                     sec ? ": secret, keep it mode 0600" : "", pub);
    if (sec) n += snprintf(text + n, sizeof text - (size_t)n, "secret-key = \"%s\"\n", sec);
    /* created 0600 whatever it becomes: a secret is never readable by others, even briefly */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return stk_errf(err, "%s: %s%s", path, strerror(errno),
                        errno == EEXIST ? " (not overwritten: remove it to make a new key)" : "");
    if (fchmod(fd, mode) || write_all(fd, text, (size_t)n) || fsync(fd)) {
        stk_errf(err, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    if (close(fd)) return stk_errf(err, "close %s: %s", path, strerror(errno));
    return 0;
}

int proto_curve_keygen(const char *base, StkErr *err) {
    char pub[PROTO_CURVE_Z85 + 1], sec[PROTO_CURVE_Z85 + 1], kp[PATH_MAX], pp[PATH_MAX];
    if (proto_curve_available(err)) return -1;
    if (snprintf(kp, sizeof kp, "%s.key", base) >= (int)sizeof kp ||
        snprintf(pp, sizeof pp, "%s.pub", base) >= (int)sizeof pp)
        return stk_errf(err, "%s: path too long", base);
    if (zmq_curve_keypair(pub, sec)) return stk_errf(err, "zmq_curve_keypair: %s", zmq_strerror(zmq_errno()));
    if (write_key_file(kp, 0600, pub, sec, err)) return -1;
    if (write_key_file(pp, 0644, pub, NULL, err)) {
        unlink(kp);
        return -1;
    }
    return 0;
}

/* Reads an open key file (at most KEY_FILE_MAX bytes) into a malloc'd string. */
static char *read_text(int fd, const char *path, StkErr *err) {
    char *buf = malloc(KEY_FILE_MAX + 1);
    if (!buf) return stk_errf(err, "%s: out of memory", path), NULL;
    size_t n = 0;
    for (ssize_t got; n < KEY_FILE_MAX && (got = read(fd, buf + n, KEY_FILE_MAX - n)) != 0;) {
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            stk_errf(err, "read %s: %s", path, strerror(errno));
            free(buf);
            return NULL;
        }
        n += (size_t)got;
    }
    buf[n] = 0;
    return buf;
}

/* Finds the line `name = "Z85"` (leading blanks allowed, as czmq indents its zcert
 * keys) and copies a valid 40-character z85 key into out. 0 found, -1 not. */
static int find_key(const char *text, const char *name, char out[PROTO_CURVE_Z85 + 1]) {
    size_t nlen = strlen(name);
    for (const char *line = text; line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *p = line + strspn(line, " \t");
        if (strncmp(p, name, nlen)) continue;
        p += nlen;
        p += strspn(p, " \t");
        if (*p++ != '=') continue;
        p += strspn(p, " \t");
        if (*p++ != '"' || strlen(p) < PROTO_CURVE_Z85 + 1 || p[PROTO_CURVE_Z85] != '"') continue;
        memcpy(out, p, PROTO_CURVE_Z85);
        out[PROTO_CURVE_Z85] = 0;
        uint8_t raw[32];
        if (zmq_z85_decode(raw, out)) return 0;
    }
    return -1;
}

/* Opens path read-only; for a secret, refuses what others could read or someone else
 * owns (they could have replaced it). */
static int open_key(const char *path, int secret, StkErr *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return stk_errf(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        stk_errf(err, "%s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        stk_errf(err, "%s: not a regular file", path);
    } else if (secret && (st.st_mode & 077)) {
        stk_errf(err, "%s: mode %04o: a secret key must not be readable or writable by group "
                 "or others (chmod 600 %s)", path, (unsigned)(st.st_mode & 07777), path);
    } else if (secret && st.st_uid != geteuid()) {
        stk_errf(err, "%s: owned by uid %u, not by this user (%u): not trusted as a secret key",
                 path, (unsigned)st.st_uid, (unsigned)geteuid());
    } else {
        return fd;
    }
    close(fd);
    return -1;
}

int proto_curve_load_secret(const char *path, char pub[PROTO_CURVE_Z85 + 1],
                            char sec[PROTO_CURVE_Z85 + 1], StkErr *err) {
    int fd = open_key(path, 1, err);
    if (fd < 0) return -1;
    char *text = read_text(fd, path, err), derived[PROTO_CURVE_Z85 + 1];
    close(fd);
    if (!text) return -1;
    int rc = 0;
    if (find_key(text, "secret-key", sec))
        rc = stk_errf(err, "%s: no secret-key = \"<40 z85 characters>\" line (a .pub file? the "
                      "secret is in NAME.key)", path);
    else if (zmq_curve_public(derived, sec))
        rc = stk_errf(err, "zmq_curve_public(%s): %s", path, zmq_strerror(zmq_errno()));
    else if (find_key(text, "public-key", pub))
        memcpy(pub, derived, sizeof derived); /* a bare secret: its public key follows from it */
    else if (strcmp(pub, derived))
        rc = stk_errf(err, "%s: its public-key does not belong to its secret-key", path);
    memset(text, 0, strlen(text)); /* the secret does not linger in freed memory */
    free(text);
    return rc;
}

int proto_curve_load_public(const char *path, char pub[PROTO_CURVE_Z85 + 1], StkErr *err) {
    int fd = open_key(path, 0, err);
    if (fd < 0) return -1;
    char *text = read_text(fd, path, err);
    close(fd);
    if (!text) return -1;
    int rc = find_key(text, "public-key", pub)
                 ? stk_errf(err, "%s: no public-key = \"<40 z85 characters>\" line", path) : 0;
    memset(text, 0, strlen(text));
    free(text);
    return rc;
}

int proto_curve_open(ProtoCurve *c, const char *key_file, const char *server_file, StkErr *err) {
    memset(c, 0, sizeof *c);
    if (proto_curve_available(err) || proto_curve_load_secret(key_file, c->pub, c->sec, err))
        return -1;
    return server_file ? proto_curve_load_public(server_file, c->server, err) : 0;
}

int proto_curve_server(void *sock, const ProtoCurve *c, StkErr *err) {
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->sec, PROTO_CURVE_Z85) ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, PROTO_ZAP_DOMAIN, strlen(PROTO_ZAP_DOMAIN)))
        return stk_errf(err, "zmq_setsockopt(CURVE server): %s", zmq_strerror(zmq_errno()));
    return 0;
}

int proto_curve_client(void *sock, const ProtoCurve *c, StkErr *err) {
    if (!c->server[0]) return stk_errf(err, "CURVE client: no server public key");
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->server, PROTO_CURVE_Z85) ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->pub, PROTO_CURVE_Z85) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->sec, PROTO_CURVE_Z85))
        return stk_errf(err, "zmq_setsockopt(CURVE client): %s", zmq_strerror(zmq_errno()));
    return 0;
}

int proto_curve_apply(void *sock, const ProtoCurve *c, int server, StkErr *err) {
    if (!c) return 0;
    return server ? proto_curve_server(sock, c, err) : proto_curve_client(sock, c, err);
}

/* ---- the ZAP handler ---- */

struct ProtoZap {
    void *sock;             /* REP at ZAP_ENDPOINT */
    pthread_t thread;
    atomic_int stop;
    atomic_ullong denied;
    uint8_t (*keys)[32];    /* admitted public keys, raw */
    int nkeys;
    char who[32];
};

/* Adds a z85 public key to the allow-list. */
static int add_key(ProtoZap *z, const char *z85, const char *from, StkErr *err) {
    if (z->nkeys >= ZAP_MAX_KEYS) return stk_errf(err, "%s: more than %d keys", from, ZAP_MAX_KEYS);
    if (!zmq_z85_decode(z->keys[z->nkeys], z85)) return stk_errf(err, "%s: not a z85 key", from);
    z->nkeys++;
    return 0;
}

/* Every *.pub file of dir. The directory decides who may connect, so one that others
 * can write to is refused. */
static int load_allow_dir(ProtoZap *z, const char *dir, StkErr *err) {
    struct stat st;
    if (stat(dir, &st)) return stk_errf(err, "allow-list %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return stk_errf(err, "allow-list %s: not a directory", dir);
    if (st.st_mode & 022)
        return stk_errf(err, "allow-list %s: mode %04o: writable by group or others, who could "
                        "add keys (chmod go-w %s)", dir, (unsigned)(st.st_mode & 07777), dir);
    DIR *d = opendir(dir);
    if (!d) return stk_errf(err, "allow-list %s: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 5 || e->d_name[0] == '.' || strcmp(e->d_name + n - 4, ".pub")) continue;
        char path[PATH_MAX], pub[PROTO_CURVE_Z85 + 1];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        rc = proto_curve_load_public(path, pub, err) || add_key(z, pub, path, err) ? -1 : 0;
    }
    closedir(d);
    return rc;
}

static int admitted(const ProtoZap *z, const zmq_msg_t *key) {
    if (zmq_msg_size((zmq_msg_t *)key) != 32) return 0;
    for (int i = 0; i < z->nkeys; i++)
        if (!memcmp(z->keys[i], zmq_msg_data((zmq_msg_t *)key), 32)) return 1;
    return 0;
}

/* Sends the reply frames: version, request id, status, text, user id, metadata. */
static int zap_reply(ProtoZap *z, zmq_msg_t *request_id, const char *status, const char *text) {
    if (zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE) < 0 ||
        zmq_msg_send(request_id, z->sock, ZMQ_SNDMORE) < 0 ||
        zmq_send(z->sock, status, 3, ZMQ_SNDMORE) < 0 ||
        zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE) < 0 ||
        zmq_send(z->sock, "", 0, ZMQ_SNDMORE) < 0 || zmq_send(z->sock, "", 0, 0) < 0)
        return -1;
    return 0;
}

static int frame_is(zmq_msg_t *f, const char *s) {
    return zmq_msg_size(f) == strlen(s) && !memcmp(zmq_msg_data(f), s, strlen(s));
}

/* Logs a refused connection (the first ZAP_LOGGED) with the peer's address and key. */
static void log_refusal(ProtoZap *z, zmq_msg_t *addr, zmq_msg_t *key, const char *why) {
    unsigned long long n = atomic_fetch_add(&z->denied, 1) + 1;
    if (n > ZAP_LOGGED) return;
    char k[PROTO_CURVE_Z85 + 1] = "-";
    if (key && zmq_msg_size(key) == 32) zmq_z85_encode(k, zmq_msg_data(key), 32);
    fprintf(stderr, "%s: refused a connection from %.*s: %s (key %s)%s\n", z->who,
            (int)zmq_msg_size(addr), (const char *)zmq_msg_data(addr), why, k,
            n == ZAP_LOGGED ? "; further refusals are only counted" : "");
}

/* Receives one request and answers it. -1 when the socket is gone. Frames: version,
 * request id, domain, address, routing id, mechanism, credentials... */
static int zap_answer(ProtoZap *z) {
    zmq_msg_t f[ZAP_MAX_FRAMES];
    int n = 0, more = 1, rc = 0;
    while (more && n < ZAP_MAX_FRAMES) {
        zmq_msg_init(&f[n]);
        if (zmq_msg_recv(&f[n], z->sock, 0) < 0) {
            zmq_msg_close(&f[n]);
            rc = -1;
            break;
        }
        more = zmq_msg_more(&f[n++]);
    }
    if (rc == 0 && (more || n < 6 || !frame_is(&f[0], "1.0"))) {
        rc = -1; /* ZeroMQ itself sent this: a request we cannot parse means a broken peer */
    } else if (rc == 0) {
        const char *status = "400", *text = "unknown key";
        if (frame_is(&f[5], "CURVE") && n == 7 && admitted(z, &f[6]))
            status = "200", text = "OK";
        else if (frame_is(&f[5], "NULL") && zmq_msg_size(&f[2]) == 0)
            status = "200", text = "OK"; /* a plain socket that never asked for ZAP */
        else
            log_refusal(z, &f[3], n == 7 ? &f[6] : NULL,
                        frame_is(&f[5], "CURVE") ? "its CURVE key is not in the allow-list"
                                                 : "not CURVE");
        rc = zap_reply(z, &f[1], status, text);
    }
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
    return rc;
}

static void *zap_main(void *arg) {
    ProtoZap *z = arg;
    while (!atomic_load(&z->stop)) {
        zmq_pollitem_t it = {z->sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, ZAP_POLL_MS);
        if (rc < 0 && zmq_errno() == EINTR) continue;
        if (rc < 0 || (rc > 0 && zap_answer(z))) {
            if (!atomic_load(&z->stop))
                fprintf(stderr, "%s: ZAP handler: %s: new CURVE connections will fail\n", z->who,
                        zmq_strerror(zmq_errno()));
            break;
        }
    }
    return NULL;
}

int proto_zap_start(ProtoZap **out, void *ctx, const char *who, const char *self_pub,
                    const char *allow_dir, StkErr *err) {
    *out = NULL;
    ProtoZap *z = calloc(1, sizeof *z);
    if (!z || !(z->keys = calloc(ZAP_MAX_KEYS, sizeof *z->keys))) {
        free(z);
        return stk_errf(err, "ZAP handler: out of memory");
    }
    snprintf(z->who, sizeof z->who, "%s", who);
    int linger = 0;
    if ((self_pub && add_key(z, self_pub, "own key", err)) ||
        (allow_dir && load_allow_dir(z, allow_dir, err)))
        goto fail;
    if (!(z->sock = zmq_socket(ctx, ZMQ_REP)) ||
        zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_bind(z->sock, ZAP_ENDPOINT)) {
        stk_errf(err, "ZAP handler: %s %s", ZAP_ENDPOINT, zmq_strerror(zmq_errno()));
        goto fail;
    }
    /* pthread_create is a full barrier: the socket may move to the handler's thread */
    if ((errno = pthread_create(&z->thread, NULL, zap_main, z))) {
        stk_errf(err, "ZAP handler: pthread_create: %s", strerror(errno));
        goto fail;
    }
    *out = z;
    return 0;
fail:
    if (z->sock) zmq_close(z->sock);
    free(z->keys);
    free(z);
    return -1;
}

uint64_t proto_zap_denied(const ProtoZap *z) { return z ? atomic_load(&((ProtoZap *)z)->denied) : 0; }

int proto_zap_keys(const ProtoZap *z) { return z ? z->nkeys : 0; }

void proto_zap_stop(ProtoZap *z) {
    if (!z) return;
    atomic_store(&z->stop, 1);
    pthread_join(z->thread, NULL);
    zmq_close(z->sock);
    free(z->keys);
    free(z);
}
