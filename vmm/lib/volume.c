// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libqvmm: qcow2 volumes through qemu-img (and mkfs.ext4, cp), each run
 * with an argv, never through a shell. Every result is written under a
 * temporary name in the same directory and renamed into place, so a
 * failure leaves nothing behind and never a half-made volume at path.
 *
 * Paths must be absolute: qemu-img reads "proto:..." and "json:{...}" as
 * protocol specifications, which an absolute path cannot start with, and
 * no option can start with '/'.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qvmm.h"
#include "internal.h"

#define VOLUME_MAX_BYTES (UINT64_C(1) << 50) /* 1 PiB */
#define VOLUME_MIN_EXT4_BYTES (UINT64_C(1) << 20)

static int path_check(const char *field, const char *path, char *err, size_t errlen)
{
	if (!path || !path[0])
		return qvmm_err(err, errlen, -EINVAL, "%s: missing", field);
	if (path[0] != '/')
		return qvmm_err(err, errlen, -EINVAL, "%s '%s': not an absolute path", field, path);
	if (strlen(path) > 4000)
		return qvmm_err(err, errlen, -ENAMETOOLONG, "%s: path too long", field);
	return 0;
}

static int size_check(uint64_t size, char *err, size_t errlen)
{
	if (size == 0 || size % 512 || size > VOLUME_MAX_BYTES)
		return qvmm_err(err, errlen, -EINVAL,
				"size %" PRIu64 ": must be a positive multiple of 512 up to %" PRIu64,
				size, VOLUME_MAX_BYTES);
	return 0;
}

/* PATH.qvmm-tmp-PID-N beside path */
static char *tmp_name(const char *path)
{
	static unsigned counter;
	char *t;

	if (asprintf(&t, "%s.qvmm-tmp-%ld-%u", path, (long)getpid(),
		     __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED)) < 0)
		return NULL;
	return t;
}

/* tmp -> path; replace: may path already exist */
static int install(const char *tmp, const char *path, bool replace, char *err, size_t errlen)
{
	if (replace) {
		if (rename(tmp, path) < 0)
			return qvmm_err(err, errlen, -errno, "rename to %s: %s", path, strerror(errno));
		return 0;
	}
	/* link(2) fails when path exists: no volume is ever replaced by create */
	if (link(tmp, path) < 0)
		return qvmm_err(err, errlen, -errno, "%s: %s", path, strerror(errno));
	unlink(tmp);
	return 0;
}

static int must_not_exist(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return qvmm_err(err, errlen, -EEXIST, "%s: already exists", path);
	if (errno != ENOENT)
		return qvmm_err(err, errlen, -errno, "%s: %s", path, strerror(errno));
	return 0;
}

struct img_info {
	char format[16];
	uint64_t virtual_size, actual_size;
};

static int img_info(const char *path, struct img_info *ret_info, char *err, size_t errlen)
{
	/* -U: the image may be open in a running QEMU (read-only look) */
	char *argv[] = { "qemu-img", "info", "-U", "--output=json", "--", (char *)path, NULL };
	char *out = NULL;
	struct json_object *j = NULL, *f, *v, *a;
	struct img_info info = { 0 };
	int ret;

	if ((ret = qvmm_run(argv, &out, err, errlen)) < 0)
		return ret;
	j = json_tokener_parse(out);
	if (!j || !json_object_object_get_ex(j, "format", &f) ||
	    !json_object_object_get_ex(j, "virtual-size", &v) ||
	    json_object_get_type(f) != json_type_string ||
	    json_object_get_type(v) != json_type_int) {
		ret = qvmm_err(err, errlen, -EIO, "%s: qemu-img info gave no format or virtual-size",
			       path);
		goto out;
	}
	if (snprintf(info.format, sizeof(info.format), "%s", json_object_get_string(f)) >=
	    (int)sizeof(info.format)) {
		ret = qvmm_err(err, errlen, -EIO, "%s: unexpected format name", path);
		goto out;
	}
	info.virtual_size = (uint64_t)json_object_get_int64(v);
	if (json_object_object_get_ex(j, "actual-size", &a) && json_object_get_type(a) == json_type_int)
		info.actual_size = (uint64_t)json_object_get_int64(a);
	*ret_info = info;
	ret = 0;
out:
	json_object_put(j);
	free(out);
	return ret;
}

int qvmm_volume_create(const char *path, uint64_t size_bytes, bool format_ext4,
		       char *err, size_t errlen)
{
	char size[32], *tmp = NULL, *raw = NULL;
	int ret, fd;

	if ((ret = path_check("path", path, err, errlen)) < 0 ||
	    (ret = size_check(size_bytes, err, errlen)) < 0 ||
	    (ret = must_not_exist(path, err, errlen)) < 0)
		return ret;
	if (format_ext4 && size_bytes < VOLUME_MIN_EXT4_BYTES)
		return qvmm_err(err, errlen, -EINVAL, "size %" PRIu64 ": too small for ext4 (1 MiB)",
				size_bytes);
	snprintf(size, sizeof(size), "%" PRIu64, size_bytes);
	if (!(tmp = tmp_name(path)))
		return qvmm_err(err, errlen, -ENOMEM, "out of memory");

	if (!format_ext4) {
		char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "--", tmp, size, NULL };
		if ((ret = qvmm_run(argv, NULL, err, errlen)) < 0)
			goto out;
	} else {
		/* a sparse raw file, mkfs.ext4 on it, then converted to qcow2 */
		if (!(raw = tmp_name(path))) {
			ret = qvmm_err(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
		fd = open(raw, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			ret = qvmm_err(err, errlen, -errno, "%s: %s", raw, strerror(errno));
			goto out;
		}
		if (ftruncate(fd, (off_t)size_bytes) < 0) {
			ret = qvmm_err(err, errlen, -errno, "%s: truncate: %s", raw, strerror(errno));
			close(fd);
			goto out_raw;
		}
		close(fd);
		char *mkfs[] = { "mkfs.ext4", "-q", "-F", "-m", "0", "-E",
				 "lazy_itable_init=1,lazy_journal_init=1", "--", raw, NULL };
		if ((ret = qvmm_run(mkfs, NULL, err, errlen)) < 0)
			goto out_raw;
		char *conv[] = { "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2",
				 "--", raw, tmp, NULL };
		if ((ret = qvmm_run(conv, NULL, err, errlen)) < 0)
			goto out_raw;
	}
	ret = install(tmp, path, false, err, errlen);
out_raw:
	if (raw)
		unlink(raw);
out:
	unlink(tmp);
	free(raw);
	free(tmp);
	return ret;
}

int qvmm_volume_overlay(const char *path, const char *backing, char *err, size_t errlen)
{
	struct img_info bi;
	char *tmp;
	int ret;

	if ((ret = path_check("path", path, err, errlen)) < 0 ||
	    (ret = path_check("backing", backing, err, errlen)) < 0 ||
	    (ret = must_not_exist(path, err, errlen)) < 0)
		return ret;
	if ((ret = img_info(backing, &bi, err, errlen)) < 0)
		return ret;
	if (strcmp(bi.format, "qcow2") != 0 && strcmp(bi.format, "raw") != 0)
		return qvmm_err(err, errlen, -EINVAL, "backing %s: format %s, not qcow2 or raw",
				backing, bi.format);
	if (!(tmp = tmp_name(path)))
		return qvmm_err(err, errlen, -ENOMEM, "out of memory");
	char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-b", (char *)backing,
			 "-F", bi.format, "--", tmp, NULL };
	if ((ret = qvmm_run(argv, NULL, err, errlen)) == 0)
		ret = install(tmp, path, false, err, errlen);
	unlink(tmp);
	free(tmp);
	return ret;
}

int qvmm_volume_resize(const char *path, uint64_t size_bytes, char *err, size_t errlen)
{
	struct img_info info;
	char size[32];
	int ret;

	if ((ret = path_check("path", path, err, errlen)) < 0 ||
	    (ret = size_check(size_bytes, err, errlen)) < 0)
		return ret;
	if ((ret = img_info(path, &info, err, errlen)) < 0)
		return ret;
	if (size_bytes < info.virtual_size)
		return qvmm_err(err, errlen, -EINVAL,
				"%s: %" PRIu64 " bytes is below the current %" PRIu64
				" (shrinking is refused)", path, size_bytes, info.virtual_size);
	if (size_bytes == info.virtual_size)
		return 0;
	snprintf(size, sizeof(size), "%" PRIu64, size_bytes);
	char *argv[] = { "qemu-img", "resize", "-q", "-f", info.format, "--", (char *)path, size, NULL };
	return qvmm_run(argv, NULL, err, errlen);
}

int qvmm_volume_info(const char *path, uint64_t *ret_virtual, uint64_t *ret_actual,
		     char *err, size_t errlen)
{
	struct img_info info;
	int ret;

	if ((ret = path_check("path", path, err, errlen)) < 0)
		return ret;
	if ((ret = img_info(path, &info, err, errlen)) < 0)
		return ret;
	if (ret_virtual)
		*ret_virtual = info.virtual_size;
	if (ret_actual)
		*ret_actual = info.actual_size;
	return 0;
}

int qvmm_volume_snapshot(const char *path, const char *rev_path, char *err, size_t errlen)
{
	struct img_info info;
	char *tmp;
	int ret;

	if ((ret = path_check("path", path, err, errlen)) < 0 ||
	    (ret = path_check("rev_path", rev_path, err, errlen)) < 0)
		return ret;
	if (strcmp(path, rev_path) == 0)
		return qvmm_err(err, errlen, -EINVAL, "rev_path: same as path");
	/* it must be an image qemu-img can read (not any file) */
	if ((ret = img_info(path, &info, err, errlen)) < 0)
		return ret;
	if (!(tmp = tmp_name(rev_path)))
		return qvmm_err(err, errlen, -ENOMEM, "out of memory");
	/* a byte copy keeps the format and any backing reference; reflinked
	 * where the file system can, holes kept otherwise */
	char *argv[] = { "cp", "--reflink=auto", "--sparse=always", "--", (char *)path, tmp, NULL };
	if ((ret = qvmm_run(argv, NULL, err, errlen)) == 0)
		ret = install(tmp, rev_path, true, err, errlen);
	unlink(tmp);
	free(tmp);
	return ret;
}
