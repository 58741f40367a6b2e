/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel/cgfs.c - cgroupfs file access beneath a mount: every path opened
 * with openat2(RESOLVE_BENEATH), one value per write, short writes are
 * errors.
 */
#include "kernel/cgfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/macros.h"

#define CGFS_COMPONENT_MAX 255

static bool component_is_safe(const char *s, size_t n) {
        if (n == 0 || n > CGFS_COMPONENT_MAX)
                return false;
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                /* ':' appears in cgroup file names of some controllers (none
                 * we use today) and in dmem region names, never in paths we
                 * build from user input; '\\' in systemd's escaped unit names
                 * ("machine-qemu\x2d1\x2dweb.scope", libvirt's groups). */
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-' || c == ':' || c == '\\'))
                        return false;
        }
        return true;
}

bool cgfs_path_is_safe(const char *relpath) {
        const char *p = relpath;

        if (!relpath || !*relpath || strlen(relpath) >= 4096)
                return false;
        for (;;) {
                const char *slash = strchr(p, '/');
                size_t n = slash ? (size_t) (slash - p) : strlen(p);

                if (!component_is_safe(p, n))
                        return false;
                if (!slash)
                        return true;
                p = slash + 1;
        }
}

/* openat2() is not wrapped by glibc 2.36. */
static int sys_openat2(int dirfd, const char *path, struct open_how *how) {
        return (int) syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
}

/* Fallback: walk the components with O_PATH|O_NOFOLLOW so a symlink
 * anywhere on the path fails with ELOOP/ENOTDIR instead of being followed. */
static int open_walk(int dirfd, const char *relpath, int flags) {
        _cleanup_close_ int cur = -EBADF;
        const char *p = relpath;
        char comp[CGFS_COMPONENT_MAX + 1];

        for (;;) {
                const char *slash = strchr(p, '/');
                size_t n = slash ? (size_t) (slash - p) : strlen(p);
                int fd;

                memcpy(comp, p, n);
                comp[n] = '\0';
                if (!slash) {
                        fd = openat(cur >= 0 ? cur : dirfd, comp, flags | O_NOFOLLOW | O_CLOEXEC);
                        return fd < 0 ? negative_errno() : fd;
                }
                fd = openat(cur >= 0 ? cur : dirfd, comp,
                            O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return negative_errno();
                closep(&cur);
                cur = fd;
                p = slash + 1;
        }
}

int cgfs_open_beneath(int dirfd, const char *relpath, int flags) {
        struct open_how how = {
                .flags = (uint64_t) (flags | O_CLOEXEC | O_NOFOLLOW),
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        int fd;

        if (!cgfs_path_is_safe(relpath))
                return -EINVAL;
        fd = sys_openat2(dirfd, relpath, &how);
        if (fd >= 0)
                return fd;
        if (errno != ENOSYS && errno != EPERM) /* EPERM: seccomp filters that deny openat2 */
                return negative_errno();
        return open_walk(dirfd, relpath, flags);
}

int cgfs_read(int dirfd, const char *relpath, char *buf, size_t size, size_t *ret_len) {
        _cleanup_close_ int fd = -EBADF;
        size_t len = 0;

        if (size < 2)
                return -EINVAL;
        fd = cgfs_open_beneath(dirfd, relpath, O_RDONLY);
        if (fd < 0)
                return fd;
        /* cgroup files can need more than one read (seq_file pages). */
        for (;;) {
                ssize_t n = read(fd, buf + len, size - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == size - 1) {
                        char extra;
                        ssize_t m = read(fd, &extra, 1);
                        if (m > 0)
                                return -E2BIG;
                        if (m < 0)
                                return negative_errno();
                        break;
                }
        }
        buf[len] = '\0';
        if (ret_len)
                *ret_len = len;
        return 0;
}

int cgfs_read_alloc(int dirfd, const char *relpath, size_t max, char **ret, size_t *ret_len) {
        size_t size = 4096;

        for (;;) {
                _cleanup_free_ char *buf = malloc(size);
                size_t len;
                int r;

                if (!buf)
                        return -ENOMEM;
                r = cgfs_read(dirfd, relpath, buf, size, &len);
                if (r == -E2BIG && size < max) {
                        size = MIN(size * 4, max);
                        continue;
                }
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(buf);
                if (ret_len)
                        *ret_len = len;
                return 0;
        }
}

int cgfs_write(int dirfd, const char *relpath, const char *data, size_t len, unsigned flags) {
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        /* O_TRUNC: cgroupfs ignores it (shells always pass it); plain files in
         * test trees then behave like single-value kernel files. */
        fd = cgfs_open_beneath(dirfd, relpath, O_WRONLY | O_TRUNC | (flags & CGFS_NONBLOCK ? O_NONBLOCK : 0));
        if (fd < 0)
                return fd;
        do
                n = write(fd, data, len);
        while (n < 0 && errno == EINTR && !(flags & CGFS_INTERRUPTIBLE));
        if (n < 0)
                return negative_errno();
        if ((size_t) n != len)
                return -EIO;
        return 0;
}

/* Splits relpath into an fd for its parent directory and its last name. */
static int open_parent(int dirfd, const char *relpath, int *ret_fd, const char **ret_name) {
        const char *slash = strrchr(relpath, '/');
        char parent[4096];
        int fd;

        if (!cgfs_path_is_safe(relpath))
                return -EINVAL;
        if (!slash) {
                *ret_fd = -EBADF;
                *ret_name = relpath;
                return 0;
        }
        memcpy(parent, relpath, (size_t) (slash - relpath));
        parent[slash - relpath] = '\0';
        fd = cgfs_open_beneath(dirfd, parent, O_PATH | O_DIRECTORY);
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        *ret_name = slash + 1;
        return 0;
}

int cgfs_mkdir(int dirfd, const char *relpath) {
        _cleanup_close_ int pfd = -EBADF;
        const char *name;
        int r;

        r = open_parent(dirfd, relpath, &pfd, &name);
        if (r < 0)
                return r;
        if (mkdirat(pfd >= 0 ? pfd : dirfd, name, 0755) < 0)
                return negative_errno();
        return 0;
}

int cgfs_rmdir(int dirfd, const char *relpath) {
        _cleanup_close_ int pfd = -EBADF;
        const char *name;
        int r;

        r = open_parent(dirfd, relpath, &pfd, &name);
        if (r < 0)
                return r;
        if (unlinkat(pfd >= 0 ? pfd : dirfd, name, AT_REMOVEDIR) < 0)
                return negative_errno();
        return 0;
}

int cgfs_exists(int dirfd, const char *relpath) {
        _cleanup_close_ int fd = -EBADF;

        fd = cgfs_open_beneath(dirfd, relpath, O_PATH);
        if (fd == -ENOENT)
                return 0;
        if (fd < 0)
                return fd;
        return 1;
}

void strv_free(char **l) {
        if (!l)
                return;
        for (char **p = l; *p; p++)
                free(*p);
        free(l);
}

static void strv_freep(char ***l) {
        strv_free(*l);
}

int cgfs_list_dirs(int dirfd, const char *relpath, char ***ret) {
        _cleanup_(strv_freep) char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        DIR *d;
        int fd;

        fd = cgfs_open_beneath(dirfd, relpath, O_RDONLY | O_DIRECTORY);
        if (fd < 0)
                return fd;
        d = fdopendir(fd);
        if (!d) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        names = calloc(1, sizeof(char *));
        if (!names) {
                closedir(d);
                return -ENOMEM;
        }
        cap = 1;
        while ((de = readdir(d))) {
                if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 ||
                    strcmp(de->d_name, "..") == 0)
                        continue;
                if (n + 1 >= cap) {
                        char **nn = reallocarray(names, cap * 2, sizeof(char *));
                        if (!nn) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        names = nn;
                        cap *= 2;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        closedir(d);
                        return -ENOMEM;
                }
                names[++n] = NULL;
        }
        closedir(d);
        *ret = TAKE_PTR(names);
        return 0;
}
