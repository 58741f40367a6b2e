/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qmp/fuzz/fuzz-qmp-reader.c - libFuzzer target for the QMP reader.
 *
 * The input is what a QMP peer sends, greeting first, preceded by two
 * control bytes: byte 0 seeds the chunking (how the stream is cut into
 * "reads", from 1 byte to 4 KiB each), byte 1 picks the message size cap.
 * The bytes go through qmp_feed(), the same path qmp_dispatch() takes
 * after recv().  Commands 2..9 are queued up front with the typed parsers
 * as their completion, so replies carrying those ids exercise the parsers
 * too (ids are assigned in order; qmp_capabilities is id 1).  Seeds live in
 * tests/qmp/corpus/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qmp/qmp-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_event(Qmp *q, const QmpEvent *ev, void *userdata) {
        size_t *sink = userdata;

        *sink += strlen(ev->name) + strlen(ev->data_json) + (size_t) ev->migration_status;
        *sink += strlen(qmp_migration_status_to_string(ev->migration_status));
}

static void on_reply_text(Qmp *q, int r, const char *json, const QmpError *err, void *userdata) {
        size_t *sink = userdata;

        if (r == 0)
                *sink += strlen(json);
        else if (err)
                *sink += strlen(err->error_class) + strlen(err->desc);
}

typedef struct Typed {
        QmpParseFn parse;
        size_t *sink;
} Typed;

static void on_reply_typed(Qmp *q, int r, struct json_object *ret, const QmpError *err, void *userdata) {
        const Typed *t = userdata;
        union {
                QmpStatus status;
                QmpCpuList cpus;
                QmpIothreadList iothreads;
                QmpMemorySummary mem;
                uint64_t actual;
                QmpPciList pci;
                QmpMigrateInfo migrate;
        } out;

        if (r < 0)
                return;
        if (t->parse(ret, &out) < 0)
                return;
        /* Release what the array parsers allocated. */
        if (t->parse == qmp_cpus_from_json)
                qmp_cpus_free(out.cpus.cpus, out.cpus.n);
        else if (t->parse == qmp_iothreads_from_json)
                qmp_iothreads_free(out.iothreads.iothreads, out.iothreads.n);
        else if (t->parse == qmp_pci_from_json)
                qmp_pci_devices_free(out.pci.devices, out.pci.n);
        (*t->sink)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const commands[] = {
                "query-status", "query-cpus-fast", "query-iothreads", "query-memory-size-summary",
                "query-balloon", "query-pci", "query-migrate",
        };
        size_t sink = 0;
        Typed typed[7];
        uint32_t seed;
        Qmp *q = NULL;
        int sv[2];

        if (size < 2)
                return 0;
        seed = data[0] * 2654435761u + 1;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return 0;
        if (qmp_new(sv[0], &q) < 0) {
                close(sv[1]);
                return 0;
        }
        (void) qmp_set_max_message_size(q, (data[1] & 1) ? 4096 : 1024 * 1024);
        qmp_set_event_handler(q, on_event, &sink);

        typed[0] = (Typed) { qmp_status_from_json, &sink };
        typed[1] = (Typed) { qmp_cpus_from_json, &sink };
        typed[2] = (Typed) { qmp_iothreads_from_json, &sink };
        typed[3] = (Typed) { qmp_memory_summary_from_json, &sink };
        typed[4] = (Typed) { qmp_balloon_from_json, &sink };
        typed[5] = (Typed) { qmp_pci_from_json, &sink };
        typed[6] = (Typed) { qmp_migrate_from_json, &sink };
        for (size_t i = 0; i < 7; i++)
                (void) qmp_execute_obj(q, commands[i], NULL, 0, on_reply_typed, &typed[i]);
        (void) qmp_execute(q, "query-version", NULL, 0, on_reply_text, &sink);

        data += 2;
        size -= 2;
        while (size > 0) {
                size_t n;

                seed = seed * 1103515245u + 12345u;
                /* Mostly small reads, sometimes large ones. */
                n = (seed >> 16) & 0x100 ? 1 + ((seed >> 4) & 4095) : 1 + ((seed >> 8) & 15);
                n = n < size ? n : size;
                if (qmp_feed(q, data, n) < 0)
                        break;
                data += n;
                size -= n;
        }

        qmp_free(q);
        close(sv[1]);
        return sink == SIZE_MAX; /* keep sink alive */
}
