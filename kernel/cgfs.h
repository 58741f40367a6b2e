/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel/cgfs.h - private: file access confined beneath a directory fd.
 *
 * Every path is relative to `dirfd` and must stay beneath it: components
 * are checked (no "", ".", "..", no characters outside [A-Za-z0-9._-:])
 * before anything is opened, and the open itself uses openat2(2) with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, falling
 * back to a component-by-component walk with O_NOFOLLOW on kernels
 * without openat2.  Every fd is O_CLOEXEC.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* true when relpath is a sequence of safe components joined by '/'. */
bool cgfs_path_is_safe(const char *relpath);

/* Opens relpath beneath dirfd with open flags (O_CLOEXEC|O_NOFOLLOW added). */
int cgfs_open_beneath(int dirfd, const char *relpath, int flags);
/* Reads the whole file; -E2BIG if it does not fit in size-1 bytes. */
int cgfs_read(int dirfd, const char *relpath, char *buf, size_t size, size_t *ret_len);
/* Reads the whole file into a malloc'd NUL-terminated buffer (up to max bytes). */
int cgfs_read_alloc(int dirfd, const char *relpath, size_t max, char **ret, size_t *ret_len);
/* One write(2); a short write is -EIO. */
/* cgfs_write flags.  NONBLOCK: O_NONBLOCK (memory.max / memory.high then
 * do not reclaim in the writer).  INTERRUPTIBLE: a write a signal
 * interrupts returns -EINTR instead of being retried (memory.reclaim: a
 * retry would start the whole request again). */
enum {
        CGFS_NONBLOCK = 1u << 0,
        CGFS_INTERRUPTIBLE = 1u << 1,
};
int cgfs_write(int dirfd, const char *relpath, const char *data, size_t len, unsigned flags);
int cgfs_mkdir(int dirfd, const char *relpath);
int cgfs_rmdir(int dirfd, const char *relpath);
/* 1 if it exists, 0 if not (ENOENT), <0 on other errors. */
int cgfs_exists(int dirfd, const char *relpath);
/* Names of subdirectories, a malloc'd NULL-terminated array. */
int cgfs_list_dirs(int dirfd, const char *relpath, char ***ret);
void strv_free(char **l);
