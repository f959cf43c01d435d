/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The name rules of qube RPC; see qname.h. */
#include "qname.h"

#include <stddef.h>
#include <string.h>

static bool is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool qname_is_name_char(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

bool qname_is_argument_char(char c)
{
	return qname_is_name_char(c) || c == '+';
}

/* strlen, but stops counting at MAX + 1. */
static size_t bounded_len(const char *s, size_t max)
{
	size_t n = 0;
	while (n <= max && s[n])
		n++;
	return n;
}

bool qname_qube_is_valid(const char *name)
{
	if (!name)
		return false;
	size_t n = bounded_len(name, QNAME_MAX_QUBE);
	if (n == 0 || n > QNAME_MAX_QUBE || !is_alpha(name[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!qname_is_name_char(name[i]))
			return false;
	return true;
}

bool qname_service_is_valid(const char *service)
{
	if (!service)
		return false;
	size_t n = bounded_len(service, QNAME_MAX_SERVICE);
	/* A leading '.' would allow ".", ".." and hidden files as service
	 * file names in a guest's service directory. */
	if (n == 0 || n > QNAME_MAX_SERVICE || service[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!qname_is_name_char(service[i]))
			return false;
	return true;
}

bool qname_user_is_valid(const char *user)
{
	if (!user)
		return false;
	size_t n = bounded_len(user, QNAME_MAX_USER);
	/* a leading '-' would read as an option to tools, a leading '.' is
	 * no user name anywhere */
	if (n == 0 || n > QNAME_MAX_USER || user[0] == '-' || user[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!qname_is_name_char(user[i]))
			return false;
	return true;
}

bool qname_argument_is_valid(const char *argument)
{
	if (!argument)
		return false;
	size_t n = bounded_len(argument, QNAME_MAX_ARGUMENT);
	if (n > QNAME_MAX_ARGUMENT)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!qname_is_argument_char(argument[i]))
			return false;
	return true;
}

bool qname_uuid_is_valid(const char *uuid)
{
	if (!uuid)
		return false;
	for (size_t i = 0; i < QNAME_UUID_LEN; i++) {
		char c = uuid[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			     (c >= 'A' && c <= 'F'))) {
			return false; /* also stops at the terminating NUL */
		}
	}
	return uuid[QNAME_UUID_LEN] == '\0';
}

/* A qube as a target names it: NAME or uuid:UUID. */
static bool qube_ref_is_valid(const char *ref)
{
	if (strncmp(ref, "uuid:", 5) == 0)
		return qname_uuid_is_valid(ref + 5);
	return qname_qube_is_valid(ref);
}

bool qname_target_is_valid(const char *target)
{
	if (!target)
		return false;
	size_t n = bounded_len(target, QNAME_MAX_TARGET);
	if (n == 0 || n > QNAME_MAX_TARGET)
		return false;
	if (target[0] != '@')
		return qube_ref_is_valid(target);
	if (strcmp(target, "@default") == 0 || strcmp(target, "@adminvm") == 0 ||
	    strcmp(target, "@dispvm") == 0)
		return true;
	if (strncmp(target, "@dispvm:", 8) == 0)
		return qube_ref_is_valid(target + 8);
	return false;
}
