/* proto_curve.h: ZeroMQ CURVE security for stoker's tcp sockets, as the zguide's
 * "ironhouse" pattern builds it: every side has a keypair, clients know the server's
 * public key, and the server admits only the client public keys of an allow-list
 * (a ZAP handler: ZeroMQ asks it about each new connection before any message passes).
 *
 * Key files are text, one key a line, z85 (40 characters), in czmq's zcert wording:
 *
 *   NAME.key  (mode 0600)   public-key = "..."  and  secret-key = "..."
 *   NAME.pub  (mode 0644)   public-key = "..."
 *
 * A secret key file readable by group or others, or owned by someone else, is refused.
 * A public key may be read from either file (a .key file holds the public key too). */
#ifndef PROTO_CURVE_H
#define PROTO_CURVE_H

#include <stdint.h>

#include "stk_err.h"

#define PROTO_CURVE_Z85 40      /* a key in z85: 32 bytes as 40 printable characters */
#define PROTO_ZAP_DOMAIN "stoker"

/* One side's CURVE settings. */
typedef struct ProtoCurve {
    char pub[PROTO_CURVE_Z85 + 1];    /* this side's public key, z85 */
    char sec[PROTO_CURVE_Z85 + 1];    /* this side's secret key, z85 */
    char server[PROTO_CURVE_Z85 + 1]; /* (clients) the server's public key, z85; "" if unset */
} ProtoCurve;

/* 0 when this libzmq was built with CURVE (zmq_has("curve")), else -1 naming the fix. */
int proto_curve_available(StkErr *err);

/* Writes a new keypair to base.key (0600) and base.pub (0644); refuses to overwrite
 * either (O_EXCL), so a key in use is never replaced by accident. */
int proto_curve_keygen(const char *base, StkErr *err);

/* Reads a keypair from a secret key file (mode and owner checked; the public key is
 * checked against the one derived from the secret). */
int proto_curve_load_secret(const char *path, char pub[PROTO_CURVE_Z85 + 1],
                            char sec[PROTO_CURVE_Z85 + 1], StkErr *err);

/* Reads the public key of a .pub or .key file. */
int proto_curve_load_public(const char *path, char pub[PROTO_CURVE_Z85 + 1], StkErr *err);

/* Fills c from key_file (this side's keypair) and server_file (the server's public key;
 * NULL for a server, whose clients are its business). Checks proto_curve_available. */
int proto_curve_open(ProtoCurve *c, const char *key_file, const char *server_file, StkErr *err);

/* Socket options, before bind/connect: a CURVE server (its secret key, the ZAP domain)
 * or a CURVE client (the server's public key and its own keypair). */
int proto_curve_server(void *sock, const ProtoCurve *c, StkErr *err);
int proto_curve_client(void *sock, const ProtoCurve *c, StkErr *err);

/* Applies proto_curve_server (server = 1) or proto_curve_client when c is not NULL;
 * nothing (plain sockets) when it is. */
int proto_curve_apply(void *sock, const ProtoCurve *c, int server, StkErr *err);

/* The ZAP handler of one ZeroMQ context: a thread answering ZeroMQ's questions about
 * new CURVE connections to that context's server sockets. It admits the public keys in
 * allow_dir (every *.pub / *.key file there) and self_pub (this process's own key, which
 * the local children of stoker-run use); every other key is refused and logged on stderr
 * (the first few) and counted. Start it before binding a CURVE server socket: without a
 * handler ZeroMQ admits every key. */
typedef struct ProtoZap ProtoZap;

/* who names the process in log lines ("stoker-train"). allow_dir may be NULL. */
int proto_zap_start(ProtoZap **z, void *ctx, const char *who, const char *self_pub,
                    const char *allow_dir, StkErr *err);

/* Connections refused so far. */
uint64_t proto_zap_denied(const ProtoZap *z);

/* Keys admitted (the allow-list's size, self included). */
int proto_zap_keys(const ProtoZap *z);

/* Stops the thread and closes its socket; call before zmq_ctx_term. NULL is fine. */
void proto_zap_stop(ProtoZap *z);

#endif
