/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * migration/handoff.h - the credit handoff of a live migration, as pure
 * state machines (docs/migration.md has the protocol: states, messages,
 * invariants).  No I/O: the caller journals a MigVm after every call that
 * changed it (atomically, before it sends what the call asked for),
 * carries the messages, and feeds in QEMU's events and the clock.
 *
 * One VM's ledger has one owner.  Its ownership has an epoch; a migration
 * moves the ledger to epoch N + 1 on the destination, exactly once:
 *
 *   source       OWNER --stop--> FROZEN --completed--> HANDED_OFF --ack-->
 * CLOSED ^               |failed                  |nack (the destination
 *                  +---------------+------------------------+  never resumed)
 *   destination  INCOMING --resume--> PROVISIONAL --record--> OWNER
 *                   |gone before resume: a tombstone that answers nack
 *
 * The record (the source's ledger frozen when its QEMU stopped, with the
 * next epoch) is journaled before it is sent.  The destination runs a
 * resumed VM on a provisional, baseline-only bank until the record comes,
 * then merges: the frozen ledger, plus the policy's earnings from the
 * freeze until now, minus what the VM used since it resumed.  A record is
 * applied once per (VM, epoch); a duplicate is acknowledged again; a
 * record for a VM the destination does not know yet is held (no answer:
 * the source sends it again); only a destination that saw the VM's QEMU
 * go before it resumed answers "nack", and only then does the source take
 * the ledger back.
 *
 * Accounting is the caller's clock (wall usec) and QEMU's usage counter
 * (usec of CPU, only ever growing for one QEMU process).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/vmid.h"
#include "policies/credits.h"

#define MIG_HOST_MAX 256 /* a host id or a peer URL ("https://host:port") */

typedef enum MigRole {
        MIG_NONE,        /* not known here */
        MIG_OWNER,       /* the ledger is live here: it earns and is charged */
        MIG_FROZEN,      /* source: QEMU stopped for a migration; the record is journaled
                          */
        MIG_HANDED_OFF,  /* source: the migration completed; the record is sent until
                            acknowledged */
        MIG_CLOSED,      /* source: the destination acknowledged; nothing of the ledger is
                            here */
        MIG_INCOMING,    /* destination: QEMU waits for the migration; no ledger yet */
        MIG_PROVISIONAL, /* destination: resumed, on a baseline-only bank, waiting for
                            the record */
        MIG_GONE,        /* destination: its QEMU went before it resumed (a tombstone) */
        _MIG_ROLE_MAX,
} MigRole;

const char *mig_role_to_string(MigRole r);

/* What a destination takes over. */
typedef struct MigRecord {
        VmId vm;
        uint64_t epoch; /* the epoch the destination owns the ledger at */
        CreditSpec spec;
        CreditLedger ledger;     /* as it was when the source froze it */
        uint64_t frozen_at_usec; /* wall clock of the freeze */
        char source[MIG_HOST_MAX];
} MigRecord;

/* One VM's handoff state on one host: all of it is journaled. */
typedef struct MigVm {
        VmId vm;
        MigRole role;
        uint64_t epoch; /* of the ledger held here (or last held) */
        CreditSpec spec;
        CreditLedger ledger;       /* owner: live; frozen: as frozen; provisional: the
                                      provisional bank */
        uint64_t ledger_time_usec; /* wall clock the ledger is accounted up to */
        uint64_t usage_base_usec;  /* QEMU's usage counter the ledger is charged up to */
        MigRecord record;          /* frozen, handed off: the record */
        bool outgoing;             /* source: a migration was announced (mig_src_start) */
        uint64_t resumed_at_usec;  /* destination: when QEMU resumed (provisional from then) */
        bool resume_late;          /* destination: found running; resumed_at is an upper bound */
        char destination[MIG_HOST_MAX];
} MigVm;

/* ---- any owner ----------------------------------------------------------- */

/* A VM owned here from `now` on, at epoch 0, with `ledger` (NULL: fresh,
 * with the spec's launch credits). */
void mig_vm_own(MigVm *v, const VmId *vm, const CreditSpec *spec, const CreditLedger *ledger, uint64_t now_usec,
                uint64_t usage_counter_usec);
/* Brings a live ledger (owner, provisional) up to now: earnings for the
 * time since it was accounted, usage since its base.  A counter below the
 * base (a new QEMU process) is all charged.  No-op in other roles. */
void mig_vm_account(MigVm *v, uint64_t now_usec, uint64_t usage_counter_usec);
/* What the VM may spend now (credit_ledger_available of the live ledger);
 * 0 in roles without a live ledger. */
int64_t mig_vm_available(const MigVm *v);

/* ---- source ------------------------------------------------------------- */

/* The migration tool says the VM goes to `destination` (vmmgrctl migration
 * start, or libvirt's event).  Only an announced migration freezes the
 * ledger when QEMU stops; it ends with the outcome.  -EBUSY when not the
 * owner. */
int mig_src_start(MigVm *v, const char *destination);

/* QEMU stopped for an announced migration (its STOP while migrating; or,
 * for a daemon that was down then, the first time it sees QEMU stopped,
 * post-migrate or gone): the ledger is accounted up to now and frozen
 * (QEMU's usage counter does not move while it is stopped, so a late
 * freeze charges the same), and the record for epoch + 1 built.  Journal
 * v before anything is sent.  -EALREADY when not the owner (a second
 * STOP), -ENOENT when no migration was announced, 0 otherwise. */
int mig_src_freeze(MigVm *v, uint64_t now_usec, uint64_t usage_counter_usec, const char *source_host);

typedef enum MigOutcome {
        MIG_COMPLETED, /* the destination has the VM's state */
        MIG_FAILED,    /* failed or cancelled: the source QEMU resumes */
} MigOutcome;

/* The migration's outcome, as QEMU's MIGRATION event (or its status after
 * a restart) tells it.  Failed: the owner again at the same epoch, the
 * ledger accounted on from the freeze (QEMU's usage counter kept counting
 * from where it stopped).  Completed: the record is to be sent
 * (mig_src_pending_record) until acknowledged.  -EPROTO when not frozen. */
int mig_src_outcome(MigVm *v, MigOutcome outcome);

/* The record to send, or NULL when there is none to send. */
const MigRecord *mig_src_pending_record(const MigVm *v);

/* The destination's answer.  ack(epoch): closed if it is this record's
 * epoch (a stale or duplicate ack changes nothing).  nack(epoch): the
 * destination saw the VM go before it resumed; the ledger comes back
 * here (owner at the same epoch, accounted on from the freeze).
 * 1 when v changed (journal it), 0 when not. */
int mig_src_ack(MigVm *v, uint64_t epoch);
int mig_src_nack(MigVm *v, uint64_t epoch, uint64_t now_usec, uint64_t usage_counter_usec);

/* The source QEMU runs again after a completed migration (the tool
 * resumed it because the destination failed): the VM runs here, so its
 * ledger is here again (owner at the same epoch, accounted on from the
 * freeze), and the record is void.  A tool that resumes both sides has a
 * split brain that no ledger can fix; docs/migration.md says so.  1 when v
 * changed. */
int mig_src_resumed(MigVm *v, uint64_t now_usec, uint64_t usage_counter_usec);

/* ---- destination --------------------------------------------------------- */

/* An incoming VM: its QEMU waits for the migration (inmigrate).  The usage
 * base is QEMU's counter now (its vCPUs have not run). */
void mig_dst_incoming(MigVm *v, const VmId *vm, const CreditSpec *spec, uint64_t usage_counter_usec);
/* QEMU resumed: a provisional bank with nothing in it earns from now. */
int mig_dst_resume(MigVm *v, uint64_t now_usec);
/* QEMU was found running: its resume was missed (the daemon was down, or
 * the tool registered it late), so when it resumed is not known.  The
 * merge estimates it from the use since: held at most at its baseline
 * (the incoming and provisional banks hold nothing), the VM cannot have
 * used more than its earnings since it resumed. */
int mig_dst_resume_late(MigVm *v, uint64_t now_usec);
/* QEMU went before it resumed: a tombstone that answers nack. */
int mig_dst_gone(MigVm *v);

typedef enum MigReply {
        MIG_REPLY_NONE, /* held: not resumed yet, or an unknown VM; the source sends
                           again */
        MIG_REPLY_ACK,
        MIG_REPLY_NACK,
} MigReply;

/* A record arrived (v is the destination's state of that VM; role NONE if
 * it does not know the VM).  Applies it once: the merged ledger is the
 * record's, plus the earnings from its freeze until now, minus what the
 * VM used since it resumed here; role OWNER at the record's epoch.
 * *ret_changed says whether v changed (journal it before replying). */
MigReply mig_dst_record(MigVm *v, const MigRecord *rec, uint64_t now_usec, uint64_t usage_counter_usec,
                        bool *ret_changed);
