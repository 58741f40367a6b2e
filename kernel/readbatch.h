/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel/readbatch.h - private: a counter file kept open for repeated
 * reads, which the host's KhReadBatch (kernel.h) can read together with
 * the others.  cpu.c and memory.c build their readers on it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "kernel/khost.h"

typedef struct KhBatchFile {
        KHost *host;
        KhReadBatch *batch; /* the host's batch when it was opened, or NULL */
        int fd;             /* from the backend's open_read, or -EBADF */
        bool own_fd;        /* a file descriptor (closed with the file), not a backend handle */
        int slot;           /* index in batch->files (and the ring's file table), or -1 */
        bool registered;    /* the ring's file table holds it at slot */
        bool queued;        /* in the batch's queue for the next run */
        bool fresh;         /* result holds a batched read not taken yet */
        int result;         /* that read: bytes read, or a negative errno */
        size_t size;        /* of buf */
        char *buf;
} KhBatchFile;

#define KH_BATCH_FILE_INIT ((KhBatchFile) { .fd = -EBADF, .slot = -1 })

/* Opens `file` of `group` in hierarchy `hier` (backend.h addressing) for
 * reads of up to size-1 bytes and attaches it to the host's batch, if
 * there is one.  -ENOENT: no such file or group.  Any other failure to
 * open is not an error: the file stays closed (kh_batch_file_is_open()
 * false) and the caller reads through the backend instead, as it did
 * before files were kept open.  -ENOMEM only for the buffer. */
int kh_batch_file_open(KHost *h, unsigned hier, const char *group, const char *file, size_t size,
                       KhBatchFile *f);
void kh_batch_file_close(KhBatchFile *f);
static inline bool kh_batch_file_is_open(const KhBatchFile *f) {
        return f->fd >= 0;
}
/* Queues a read of the file for the batch's next run (nothing where the
 * file is closed or has no batch: its read then happens when taken). */
void kh_batch_file_queue(KhBatchFile *f);
/* The file's content, NUL-terminated in f->buf: the batched read if one
 * is waiting (it is taken), else a read now.  -E2BIG: it did not fit;
 * -ENOENT: the group or file is gone (kernfs answers -ENODEV on an fd
 * whose file was removed); -EBADF: not open. */
int kh_batch_file_read(KhBatchFile *f);

/* /proc/sys/kernel/io_uring_disabled's content: 0 allowed, 1 only for
 * kernel.io_uring_group and CAP_SYS_ADMIN, 2 disabled.  -EBADMSG for
 * anything else.  (Exposed for the unit tests.) */
int kh_io_uring_disabled_parse(const char *text, int *ret_level);
