/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The name rules of qube RPC, in one place.  qube-call checks what it is
 * about to send with them, the qrpc codec checks every name it decodes or
 * encodes with them, the broker and qube-agent check again with them, and
 * libqpolicy refuses requests (and system information) that break them.
 * So the bytes the policy evaluated are exactly the bytes that may be
 * delivered, and no component accepts a name another one would refuse.
 *
 * Pure functions; a NULL argument is invalid.  Each reads at most its
 * length cap + 1 bytes, so an unterminated or huge string is safe to pass
 * as long as that many bytes are readable.
 */
#ifndef QNAME_H
#define QNAME_H

#include <stdbool.h>

#define QNAME_MAX_QUBE     31u /* qube name: 1-31 of [A-Za-z0-9_.-], leading letter */
#define QNAME_MAX_TARGET   64u /* requested target: a qube name, uuid:UUID or an @keyword form */
#define QNAME_UUID_LEN     36u /* 8-4-4-4-12 hex digits */
#define QNAME_MAX_SERVICE  64u /* service: 1-64 of [A-Za-z0-9_.-], not leading '.' */
#define QNAME_MAX_ARGUMENT 64u /* argument: 0-64 of [A-Za-z0-9_.+-] */
#define QNAME_MAX_USER     32u /* user= value: 1-32 of [A-Za-z0-9_.-], not leading '-' or '.' */

/* [A-Za-z0-9_.-]: the characters of qube and service names. */
bool qname_is_name_char(char c);
/* [A-Za-z0-9_.+-]: the characters of a service argument. */
bool qname_is_argument_char(char c);

bool qname_qube_is_valid(const char *name);
bool qname_service_is_valid(const char *service);
/* Without the '+' that separates it from the service; may be empty. */
bool qname_argument_is_valid(const char *argument);
/* A qube name, "uuid:UUID", "@default", "@adminvm", "@dispvm",
 * "@dispvm:NAME" or "@dispvm:uuid:UUID". */
bool qname_target_is_valid(const char *target);
/* A UUID in the 8-4-4-4-12 hex form (either case), without "uuid:". */
bool qname_uuid_is_valid(const char *uuid);
/* The value of a policy's user= (the user a service runs as in the
 * target): a portable POSIX user name. */
bool qname_user_is_valid(const char *user);

#endif
