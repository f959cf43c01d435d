/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qubed: /etc/qube/qubed.conf.  Lines "key = value"; '#' starts a comment
 * line; blank lines are ignored.  Every error names FILE:LINE and the key.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "qubed.h"

#ifndef QUBED_BROKER_PATH
#define QUBED_BROKER_PATH "/usr/sbin/qube-broker"
#endif
#ifndef QUBED_VSOCKD_PATH
#define QUBED_VSOCKD_PATH "/usr/bin/qube-vsockd"
#endif
#ifndef QUBED_HOST_AGENT_PATH
#define QUBED_HOST_AGENT_PATH ""
#endif
#ifndef QUBED_GUI_BRIDGE_PATH
#define QUBED_GUI_BRIDGE_PATH "/usr/bin/qube-gui-bridge"
#endif

static int set_str(char **slot, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return -ENOMEM;
	free(*slot);
	*slot = s;
	return 0;
}

int qd_config_defaults(struct qd_config *c)
{
	memset(c, 0, sizeof(*c));
	if (set_str(&c->state_dir, "/var/lib/qube") < 0 || set_str(&c->run_dir, "/run/qube") < 0 ||
	    set_str(&c->log_dir, "/var/log/qube") < 0 || set_str(&c->socket_path, "") < 0 ||
	    set_str(&c->socket_group, "qube") < 0 || set_str(&c->libvirt_uri, "qemu:///system") < 0 ||
	    set_str(&c->broker_path, QUBED_BROKER_PATH) < 0 ||
	    set_str(&c->host_agent_path, QUBED_HOST_AGENT_PATH) < 0 ||
	    set_str(&c->vsockd_path, QUBED_VSOCKD_PATH) < 0 ||
	    set_str(&c->policy_dir, QUBE_POLICY_DIR) < 0 ||
	    set_str(&c->host_rpc_dir, "/etc/qube/rpc-host") < 0 ||
	    set_str(&c->host_service_user, "nobody") < 0 ||
	    set_str(&c->dev_kvm, "/dev/kvm") < 0 || set_str(&c->dev_vhost_vsock, "/dev/vhost-vsock") < 0 ||
	    set_str(&c->gui_control, "") < 0 || set_str(&c->gui_user, "") < 0 ||
	    set_str(&c->gui_bridge_path, QUBED_GUI_BRIDGE_PATH) < 0 ||
	    set_str(&c->gui_waypipe_path, "/usr/bin/waypipe") < 0)
		return -ENOMEM;
	c->accel = QVMM_ACCEL_AUTO;
	c->vsock = QVMM_VSOCK_AUTO;
	c->start_timeout_s = 180;
	c->shutdown_timeout_s = 60;
	c->private_size = 2ull << 30;
	c->volatile_size = 1ull << 30;
	c->preload_memory = 4ull << 30;
	return 0;
}

void qd_config_finish(struct qd_config *c)
{
	char **strs[] = { &c->state_dir, &c->run_dir, &c->log_dir, &c->socket_path, &c->socket_group,
			  &c->libvirt_uri, &c->broker_path, &c->host_agent_path, &c->vsockd_path,
			  &c->policy_dir, &c->host_rpc_dir, &c->host_service_user, &c->dev_kvm,
			  &c->dev_vhost_vsock, &c->gui_control, &c->gui_user, &c->gui_bridge_path,
			  &c->gui_waypipe_path };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
}

/* "2G", "512M", "1048576" -> bytes */
static int parse_size(const char *v, uint64_t *ret)
{
	char *end;
	uint64_t n, mul = 1;

	if (!isdigit((unsigned char)v[0]))
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno)
		return -EINVAL;
	if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0)
		mul = 1ull << 10;
	else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0)
		mul = 1ull << 20;
	else if (strcmp(end, "G") == 0 || strcmp(end, "GiB") == 0)
		mul = 1ull << 30;
	else if (*end)
		return -EINVAL;
	if (n > UINT64_MAX / mul)
		return -ERANGE;
	*ret = n * mul;
	return 0;
}

static int parse_seconds(const char *v, unsigned *ret)
{
	char *end;
	unsigned long n;

	if (!isdigit((unsigned char)v[0]))
		return -EINVAL;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || n == 0 || n > 86400)
		return -EINVAL;
	*ret = (unsigned)n;
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int apply(struct qd_config *c, const char *key, const char *v, char *why, size_t whylen)
{
	static const struct {
		const char *key;
		size_t off;
		bool path;
	} strs[] = {
		{ "state_dir", offsetof(struct qd_config, state_dir), true },
		{ "run_dir", offsetof(struct qd_config, run_dir), true },
		{ "log_dir", offsetof(struct qd_config, log_dir), true },
		{ "socket", offsetof(struct qd_config, socket_path), true },
		{ "socket_group", offsetof(struct qd_config, socket_group), false },
		{ "libvirt_uri", offsetof(struct qd_config, libvirt_uri), false },
		{ "broker", offsetof(struct qd_config, broker_path), true },
		{ "host_agent", offsetof(struct qd_config, host_agent_path), true },
		{ "vsockd", offsetof(struct qd_config, vsockd_path), true },
		{ "policy_dir", offsetof(struct qd_config, policy_dir), true },
		{ "host_rpc_dir", offsetof(struct qd_config, host_rpc_dir), true },
		{ "host_service_user", offsetof(struct qd_config, host_service_user), false },
		{ "dev_kvm", offsetof(struct qd_config, dev_kvm), true },
		{ "dev_vhost_vsock", offsetof(struct qd_config, dev_vhost_vsock), true },
		{ "gui_compositor", offsetof(struct qd_config, gui_control), true },
		{ "gui_user", offsetof(struct qd_config, gui_user), false },
		{ "gui_bridge", offsetof(struct qd_config, gui_bridge_path), true },
		{ "gui_waypipe", offsetof(struct qd_config, gui_waypipe_path), true },
	};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if (strcmp(key, strs[i].key) != 0)
			continue;
		if (strs[i].path && v[0] && v[0] != '/') {
			snprintf(why, whylen, "%s: '%s' is not an absolute path", key, v);
			return -EINVAL;
		}
		return set_str((char **)((char *)c + strs[i].off), v);
	}
	if (strcmp(key, "accel") == 0) {
		if (qvmm_accel_parse(v, &c->accel) < 0) {
			snprintf(why, whylen, "accel: '%s': expected auto, kvm or tcg", v);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "vsock") == 0) {
		if (qvmm_vsock_parse(v, &c->vsock) < 0) {
			snprintf(why, whylen, "vsock: '%s': expected auto, vhost or vsockd", v);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "start_timeout") == 0 || strcmp(key, "shutdown_timeout") == 0) {
		unsigned *slot = key[0] == 's' && key[1] == 't' && key[2] == 'a' ? &c->start_timeout_s
										  : &c->shutdown_timeout_s;
		if (parse_seconds(v, slot) < 0) {
			snprintf(why, whylen, "%s: '%s': expected a number of seconds, 1..86400", key, v);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "private_size") == 0 || strcmp(key, "volatile_size") == 0) {
		uint64_t *slot = key[0] == 'p' ? &c->private_size : &c->volatile_size;
		if (parse_size(v, slot) < 0 || *slot < (16ull << 20)) {
			snprintf(why, whylen, "%s: '%s': expected a size of at least 16M (e.g. 2G, 512M)", key, v);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(key, "preload_memory") == 0) {
		/* "0" turns preloading off */
		if (strcmp(v, "0") == 0) {
			c->preload_memory = 0;
			return 0;
		}
		if (parse_size(v, &c->preload_memory) < 0 || c->preload_memory < (1ull << 20)) {
			snprintf(why, whylen, "preload_memory: '%s': expected 0 or a size (e.g. 4G, 800M)", v);
			return -EINVAL;
		}
		return 0;
	}
	snprintf(why, whylen, "unknown key '%s'", key);
	return -EINVAL;
}

int qd_config_load(struct qd_config *c, const char *file, bool required, char *err, size_t errlen)
{
	FILE *f = fopen(file, "re");
	char line[4096];
	unsigned lineno = 0;

	if (!f) {
		if (errno == ENOENT && !required)
			return 0;
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char why[512], *key, *val, *eq;
		size_t n = strlen(line);

		lineno++;
		if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
			snprintf(err, errlen, "%s:%u: line too long", file, lineno);
			fclose(f);
			return -EINVAL;
		}
		key = trim(line);
		if (!*key || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%u: expected 'key = value'", file, lineno);
			fclose(f);
			return -EINVAL;
		}
		*eq = '\0';
		val = trim(eq + 1);
		key = trim(key);
		for (const char *p = val; *p; p++)
			if ((unsigned char)*p < 0x20) {
				snprintf(err, errlen, "%s:%u: %s: control character in the value", file, lineno, key);
				fclose(f);
				return -EINVAL;
			}
		int r = apply(c, key, val, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "%s:%u: %s", file, lineno, why);
			fclose(f);
			return r;
		}
	}
	fclose(f);
	return 0;
}
