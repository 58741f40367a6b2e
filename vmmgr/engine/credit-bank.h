/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/engine/credit-bank.h - one VM's CPU credit bank, enforced on a KHost.
 *
 * The ledger (policies/credits.h) is the truth: earnings follow the wall
 * clock, spending is the usage the kernel counted for the VM's vcpus
 * group.  What differs is how it is enforced:
 *
 *   emulated (stock kernels, v1 or v2): each tick vmmgr reads usage and
 *     sets the quota by credit_emulated_decide();
 *   kernel (cpu.max.runtime): quota = earn rate per period, burst = cap -
 *     quota, and the pool's runtime is kept equal to the ledger's balance
 *     with relative writes ("+N"/"-N"), which also tops up what the kernel
 *     did not refill while the group was idle (its period timer stops).
 *
 * Time is passed in (monotonic microseconds), so the same code runs on the
 * kernel model's simulated clock and on the real one.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "kernel/kernel.h"
#include "policies/credits.h"

typedef enum CreditBankKind {
        CREDIT_BANK_EMULATED,
        CREDIT_BANK_KERNEL,
} CreditBankKind;

const char *credit_bank_kind_to_string(CreditBankKind k);

/* What the VM does with its credits, as operators see it (docs/credits.md):
 * from its usage and throttled time averaged over about 2 s, and shown
 * only once a new state has held for 2 s. */
typedef enum CreditState {
        CREDIT_STATE_BASELINE,  /* at or below baseline, not held back */
        CREDIT_STATE_BURSTING,  /* above baseline (by 10 % of it + 1 % of a CPU) on credits or surplus */
        CREDIT_STATE_THROTTLED, /* held at its baseline: limited there and throttled > 2 % of the time */
} CreditState;

/* Things that happened to a bank since its notices were last taken. */
enum {
        CREDIT_NOTICE_STATE = 1u << 0,          /* the shown state changed */
        CREDIT_NOTICE_LAUNCH_SPENT = 1u << 1,   /* the launch credits ran out */
        CREDIT_NOTICE_EXHAUSTED = 1u << 2,      /* credits exhausted, held at baseline */
        CREDIT_NOTICE_BURSTING_AGAIN = 1u << 3, /* bursting after being held */
        CREDIT_NOTICE_SURPLUS_CHARGED = 1u << 4, /* unlimited mode: surplus past its limit was charged */
};

const char *credit_state_to_string(CreditState s);

typedef struct CreditBank CreditBank;

typedef struct CreditSnapshot {
        CreditBankKind kind;
        CreditSpec spec;
        CreditLedger ledger;
        CreditState state;
        CreditEnforcement enforcement; /* what is applied to the vcpus group */
        uint64_t usage_usec;           /* the group's counter at the last tick */
        uint64_t throttled_usec;       /* the group's throttled time (kernel counter) */
        uint64_t kernel_runtime_usec;  /* kernel bank: the pool at the last look (read, or where a VM idle
                                        * since a look in step, the ledger's target: the pool earned alike) */
        uint64_t bandwidth_writes;     /* quota/burst writes made (each refills one quota) */
        uint64_t runtime_writes;       /* kernel bank: runtime corrections made */
        uint64_t runtime_reads;        /* kernel bank: cpu.max.runtime reads */
        uint64_t last_tick_usec;
        uint64_t tick_usec;            /* the tick the bank plans its limits for */
} CreditSnapshot;

/* Starts banking for a VM whose groups exist.  `ledger` resumes a saved
 * ledger (NULL: a fresh one with the spec's launch credits).  `usage_base`
 * says where the ledger's spending was last counted up to in the group's
 * usage counter (UINT64_MAX: now, i.e. nothing outstanding). */
int credit_bank_new(KHost *h, const VmId *vm, const CreditSpec *spec, CreditBankKind kind,
                    const EmulatedBankParams *params, const CreditLedger *ledger, uint64_t usage_base,
                    uint64_t now_usec, CreditBank **ret);
CreditBank *credit_bank_free(CreditBank *b);

/* Accrues, charges usage since the last tick, and enforces. */
int credit_bank_tick(CreditBank *b, uint64_t now_usec);
/* Batched looks (vmmgrd's tick): queues the counter reads the next look
 * will make on the host's read batch (kernel.h), if the bank's files are
 * attached to one; the look (credit_bank_tick) after the batch's run
 * takes them from there, and reads for itself whatever was not queued.
 * Queue, run the batch once, then tick each queued bank. */
void credit_bank_queue_look(CreditBank *b);
/* When the bank next needs a look (monotonic usec).  Landing and debt
 * need every tick; a VM held steadily at baseline or with a deep bank
 * needs one at most every CREDIT_BANK_MAX_INTERVAL_USEC, because the
 * kernel enforces in between: this is what keeps 1,000 VMs cheap.  A
 * kernel bank is looked at every 10 s: the kernel keeps the bank (v2 of
 * the series), so a look only brings the ledger, the state and the
 * reports up to date; while a busy VM spends launch credits, which flow
 * into its pool as it drains, every second. */
uint64_t credit_bank_next_tick_usec(const CreditBank *b);

#define CREDIT_BANK_MAX_INTERVAL_USEC UINT64_C(1000000)
/* The tick the bank is looked at (vmmgrd's [daemon] tick, also after a
 * reload): the emulated bank sizes a landing quota to outlast one tick. */
void credit_bank_set_tick_usec(CreditBank *b, uint64_t tick_usec);

/* Operator changes; each first brings the ledger up to now. */
int credit_bank_set_spec(CreditBank *b, const CreditSpec *spec, uint64_t now_usec);
/* Undoes a set_spec whose change could not be stored: the old spec and
 * the ledger as snapshotted right before it (with no look in between,
 * so the next look accounts from the same point). */
int credit_bank_restore(CreditBank *b, const CreditSpec *spec, const CreditLedger *ledger);
int credit_bank_inject(CreditBank *b, int64_t delta_usec, uint64_t now_usec);
/* A live migration's handoff (docs/migration.md): puts `ledger` and `spec`
 * in the bank's place as accounted up to `as_of_usec` (monotonic, the
 * bank's clock) and usage counter `usage_base` (UINT64_MAX: where the
 * bank's last look left it), without a look of its own, and enforces
 * them (the kernel bank writes its pool).  The next look credits the
 * earnings from as_of_usec and charges the usage since usage_base to the
 * new ledger, so nothing between the caller's look and this call goes to
 * the ledger being replaced.  On an enforcement error the new ledger
 * stays (it is the truth; the next look retries the write). */
int credit_bank_install_ledger(CreditBank *b, const CreditSpec *spec, const CreditLedger *ledger, uint64_t as_of_usec,
                               uint64_t usage_base);
/* Moves credits between two VMs: either both change or neither does. */
int credit_bank_transfer(CreditBank *from, CreditBank *to, int64_t amount_usec, uint64_t now_usec);

/* Someone else wrote the group's CPU bandwidth (libvirt's schedinfo or
 * a vCPU hotplug): takes what is applied now as the bank's view and
 * looks, so the bank's own limit is written back if it differs.  1 when
 * the applied value was not the bank's, 0 when it was, or an error. */
int credit_bank_resync(CreditBank *b, uint64_t now_usec);
void credit_bank_snapshot(const CreditBank *b, CreditSnapshot *ret);
const VmId *credit_bank_vm(const CreditBank *b);
/* CREDIT_NOTICE_* bits gathered by looks since the last call; clears them. */
unsigned credit_bank_take_notices(CreditBank *b);

/* Test seam: fail the next kernel write of this bank with `error` (once).
 * Lets tests prove a transfer leaves both VMs as they were when the second
 * write fails. */
void credit_bank_fail_next_write(CreditBank *b, int error);
