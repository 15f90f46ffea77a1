/* proto_check.h: the semantic rules of each message (limits, ranges, uniqueness),
 * shared by the encoder (which refuses to send a message breaking them) and the
 * decoder (which rejects one). Internal to stoker_proto. Each returns 0 or -1 + err. */
#ifndef PROTO_CHECK_H
#define PROTO_CHECK_H

#include "proto.h"

/* Number of fields after [version, type] for a message type; 0 for an unknown one. */
uint32_t proto_field_count(ProtoType t);

/* Dimensions within limits, pointers set, every label in [0, PROTO_MAX_CLASSES). */
int proto_check_batch(const ProtoBatch *b, StkErr *err);

/* A string of min..max bytes without NUL bytes; what names it in the message. */
int proto_check_str(ProtoStr s, uint32_t min, uint32_t max, const char *what, StkErr *err);

/* role is a ProtoRole. */
int proto_check_role(uint32_t role, const char *what, StkErr *err);

/* count within limits, every name valid and unique. */
int proto_check_metrics(const ProtoMetrics *m, StkErr *err);

/* Dispatches on m->type to the rules of that message. */
int proto_check_msg(const ProtoMsg *m, StkErr *err);

#endif
