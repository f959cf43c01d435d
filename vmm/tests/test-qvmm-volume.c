// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libqvmm volumes with the real qemu-img and mkfs.ext4 (suite vmm):
 * create (plain and ext4), overlay, resize (grow; shrink refused), info,
 * snapshot, and the errors for bad paths and sizes, each leaving nothing
 * behind. Everything happens in a directory whose name holds spaces, ';',
 * '$(...)' and backquotes, so a shell anywhere would run them: the test
 * checks that no file named "pwned" appeared.
 * Skips (77) when qemu-img or mkfs.ext4 is missing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qvmm.h"

extern char **environ;

static int failures, checks;

#define CHECK(cond, ...)                                                    \
	do {                                                                \
		checks++;                                                   \
		if (!(cond)) {                                              \
			failures++;                                         \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                       \
			fputc('\n', stderr);                                \
		}                                                           \
	} while (0)

#define MiB (UINT64_C(1) << 20)

static char dir[512];

static char *in_dir(const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	return p;
}

static bool have(const char *prog)
{
	char *argv[] = { "sh", "-c", "command -v \"$0\" >/dev/null", (char *)prog, NULL };
	pid_t pid;
	int st;

	/* (a shell here only to look the tool up; never with a volume path) */
	if (posix_spawnp(&pid, "sh", NULL, NULL, argv, environ) != 0)
		return false;
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* stdout of argv (at most len-1 bytes), exit status */
static int capture(char *const argv[], char *out, size_t len)
{
	int p[2];
	pid_t pid;
	posix_spawn_file_actions_t fa;
	size_t n = 0;
	int st;

	if (pipe(p) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(p[0]);
		close(p[1]);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	for (;;) {
		ssize_t r = read(p[0], out + n, len - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == len - 1)
			break;
	}
	out[n] = '\0';
	close(p[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* number of entries in dir (temporaries left behind show up here) */
static int entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static bool is_ext4(const char *qcow2)
{
	char *raw = in_dir("check.raw");
	char out[64];
	unsigned char sb[2];
	bool ok = false;
	char *argv[] = { "qemu-img", "convert", "-f", "qcow2", "-O", "raw", "--", (char *)qcow2, raw, NULL };

	if (capture(argv, out, sizeof(out)) == 0) {
		int fd = open(raw, O_RDONLY);
		/* ext2/3/4 superblock at 1024, magic 0xEF53 at offset 56 */
		if (fd >= 0 && pread(fd, sb, 2, 1024 + 56) == 2 && sb[0] == 0x53 && sb[1] == 0xef)
			ok = true;
		if (fd >= 0)
			close(fd);
		/* and fsck finds it clean */
		char *fsck[] = { "e2fsck", "-n", "-f", raw, NULL };
		static char fout[8192];
		if (ok && capture(fsck, fout, sizeof(fout)) != 0)
			ok = false;
	}
	unlink(raw);
	free(raw);
	return ok;
}

static bool info_has(const char *path, const char *needle)
{
	static char out[16384];
	char *argv[] = { "qemu-img", "info", "-U", "--output=json", "--", (char *)path, NULL };

	return capture(argv, out, sizeof(out)) == 0 && strstr(out, needle) != NULL;
}

int main(void)
{
	char err[1024];
	uint64_t v = 0, a = 0;
	int r;

	if (!have("qemu-img") || !have("mkfs.ext4") || !have("e2fsck")) {
		printf("SKIP: qemu-img, mkfs.ext4 or e2fsck missing (qemu-utils, e2fsprogs)\n");
		return 77;
	}
	snprintf(dir, sizeof(dir), "/tmp/qvmm vol; touch pwned $(touch pwned) `touch pwned`.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	/* relative "pwned" of an injected command would land in the cwd */
	if (chdir(dir) < 0)
		return 1;

	char *plain = in_dir("plain; rm -rf x.qcow2");
	char *ext4 = in_dir("private $(id).qcow2");
	char *ovl = in_dir("overlay `id`.qcow2");
	char *rev = in_dir("private.qcow2.rev");
	char *text = in_dir("not-an-image.txt");

	/* create */
	r = qvmm_volume_create(plain, 4 * MiB, false, err, sizeof(err));
	CHECK(r == 0, "create plain: %d %s", r, err);
	CHECK(qvmm_volume_info(plain, &v, &a, err, sizeof(err)) == 0 && v == 4 * MiB,
	      "plain info: virtual %llu (%s)", (unsigned long long)v, err);
	CHECK(info_has(plain, "\"format\": \"qcow2\""), "plain is not qcow2");
	CHECK(entries() == 1, "create left %d entries", entries());

	r = qvmm_volume_create(ext4, 16 * MiB, true, err, sizeof(err));
	CHECK(r == 0, "create ext4: %d %s", r, err);
	CHECK(info_has(ext4, "\"format\": \"qcow2\""), "ext4 volume is not qcow2");
	CHECK(is_ext4(ext4), "no clean ext4 inside the ext4 volume");
	CHECK(qvmm_volume_info(ext4, &v, &a, err, sizeof(err)) == 0 && v == 16 * MiB && a > 0,
	      "ext4 info: %llu %llu", (unsigned long long)v, (unsigned long long)a);
	printf("ext4 volume: virtual %llu, actual %llu bytes\n", (unsigned long long)v,
	       (unsigned long long)a);
	CHECK(entries() == 2, "create ext4 left %d entries", entries());

	/* create: errors change nothing */
	struct stat st0, st1;
	stat(plain, &st0);
	err[0] = '\0';
	r = qvmm_volume_create(plain, 8 * MiB, false, err, sizeof(err));
	CHECK(r == -EEXIST && strstr(err, "already exists"), "create over existing: %d %s", r, err);
	stat(plain, &st1);
	CHECK(st0.st_ino == st1.st_ino && st0.st_size == st1.st_size, "existing volume changed");
	char *bad = in_dir("bad.qcow2");
	CHECK(qvmm_volume_create(bad, 0, false, err, sizeof(err)) == -EINVAL && strstr(err, "size"),
	      "size 0: %s", err);
	CHECK(qvmm_volume_create(bad, 1000, false, err, sizeof(err)) == -EINVAL, "size 1000");
	CHECK(qvmm_volume_create(bad, UINT64_MAX - 511, false, err, sizeof(err)) == -EINVAL, "huge");
	CHECK(qvmm_volume_create(bad, 512 * 1024, true, err, sizeof(err)) == -EINVAL &&
		      strstr(err, "ext4"),
	      "ext4 too small: %s", err);
	CHECK(qvmm_volume_create("rel.qcow2", MiB, false, err, sizeof(err)) == -EINVAL &&
		      strstr(err, "absolute"),
	      "relative: %s", err);
	CHECK(qvmm_volume_create("", MiB, false, err, sizeof(err)) == -EINVAL, "empty path");
	CHECK(qvmm_volume_create(NULL, MiB, false, err, sizeof(err)) == -EINVAL, "NULL path");
	err[0] = '\0';
	r = qvmm_volume_create("/nonexistent-dir-qvmm/x.qcow2", MiB, false, err, sizeof(err));
	CHECK(r < 0 && err[0], "missing directory: %d", r);
	printf("create in a missing directory: %s\n", err);
	r = qvmm_volume_create("/nonexistent-dir-qvmm/x.qcow2", 2 * MiB, true, err, sizeof(err));
	CHECK(r < 0 && err[0], "ext4 in missing directory: %d", r);
	CHECK(entries() == 2, "failed creates left %d entries", entries());

	/* overlay */
	r = qvmm_volume_overlay(ovl, ext4, err, sizeof(err));
	CHECK(r == 0, "overlay: %d %s", r, err);
	CHECK(info_has(ovl, "\"backing-filename-format\": \"qcow2\""), "overlay backing format");
	CHECK(info_has(ovl, "private $(id).qcow2"), "overlay backing name not literal");
	CHECK(qvmm_volume_info(ovl, &v, NULL, err, sizeof(err)) == 0 && v == 16 * MiB,
	      "overlay virtual %llu", (unsigned long long)v);
	CHECK(is_ext4(ovl), "overlay does not show the backing ext4");
	CHECK(qvmm_volume_overlay(ovl, ext4, err, sizeof(err)) == -EEXIST, "overlay over existing");
	r = qvmm_volume_overlay(bad, "/nonexistent-qvmm.qcow2", err, sizeof(err));
	CHECK(r < 0, "overlay of a missing backing: %d", r);
	CHECK(qvmm_volume_overlay(bad, "rel.qcow2", err, sizeof(err)) == -EINVAL, "relative backing");
	CHECK(entries() == 3, "overlay left %d entries", entries());

	/* resize: grow only */
	CHECK(qvmm_volume_resize(plain, 8 * MiB, err, sizeof(err)) == 0, "grow: %s", err);
	CHECK(qvmm_volume_info(plain, &v, NULL, err, sizeof(err)) == 0 && v == 8 * MiB, "grown size");
	CHECK(qvmm_volume_resize(plain, 8 * MiB, err, sizeof(err)) == 0, "same size");
	err[0] = '\0';
	r = qvmm_volume_resize(plain, 4 * MiB, err, sizeof(err));
	CHECK(r == -EINVAL && strstr(err, "shrinking is refused"), "shrink: %d %s", r, err);
	CHECK(qvmm_volume_info(plain, &v, NULL, err, sizeof(err)) == 0 && v == 8 * MiB,
	      "shrink changed the size");
	CHECK(qvmm_volume_resize(plain, 8 * MiB + 1, err, sizeof(err)) == -EINVAL, "odd size");
	CHECK(qvmm_volume_resize(bad, 8 * MiB, err, sizeof(err)) < 0, "resize missing");

	/* info errors */
	CHECK(qvmm_volume_info(bad, &v, &a, err, sizeof(err)) < 0 && err[0], "info missing");
	CHECK(qvmm_volume_info("x", &v, &a, err, sizeof(err)) == -EINVAL, "info relative");

	/* snapshot: one revision, replaced each time */
	CHECK(qvmm_volume_snapshot(ext4, rev, err, sizeof(err)) == 0, "snapshot: %s", err);
	CHECK(qvmm_volume_info(rev, &v, NULL, err, sizeof(err)) == 0 && v == 16 * MiB, "rev size");
	CHECK(is_ext4(rev), "revision is not the ext4 volume");
	CHECK(qvmm_volume_resize(ext4, 32 * MiB, err, sizeof(err)) == 0, "grow ext4: %s", err);
	CHECK(qvmm_volume_snapshot(ext4, rev, err, sizeof(err)) == 0, "second snapshot: %s", err);
	CHECK(qvmm_volume_info(rev, &v, NULL, err, sizeof(err)) == 0 && v == 32 * MiB,
	      "revision not replaced (%llu)", (unsigned long long)v);
	CHECK(qvmm_volume_snapshot(ext4, ext4, err, sizeof(err)) == -EINVAL, "snapshot onto itself");
	int fd = open(text, O_WRONLY | O_CREAT, 0600);
	if (fd >= 0) {
		CHECK(write(fd, "hello\n", 6) == 6, "write");
		close(fd);
	}
	/* qemu-img reads any file as raw; a text file is a (tiny) raw image */
	CHECK(qvmm_volume_snapshot(bad, rev, err, sizeof(err)) < 0, "snapshot of a missing file");
	CHECK(qvmm_volume_info(rev, &v, NULL, err, sizeof(err)) == 0 && v == 32 * MiB,
	      "failed snapshot changed the revision");
	CHECK(entries() == 5, "snapshots left %d entries (want 5)", entries());

	/* no shell ran anywhere */
	struct stat pst;
	CHECK(stat("pwned", &pst) < 0 && stat("/tmp/pwned", &pst) < 0, "a shell ran a path");
	CHECK(stat("x.qcow2", &pst) < 0, "unexpected file");

	printf("%d checks, %d failed\n", checks, failures);
	char *rm[] = { "rm", "-rf", "--", dir, NULL };
	char out[16];
	if (failures == 0)
		capture(rm, out, sizeof(out));
	else
		fprintf(stderr, "left %s for inspection\n", dir);
	free(plain);
	free(ext4);
	free(ovl);
	free(rev);
	free(text);
	free(bad);
	return failures ? 1 : 0;
}
