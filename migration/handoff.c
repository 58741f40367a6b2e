/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The credit handoff's state machines (handoff.h; docs/migration.md).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/macros.h"
#include "migration/handoff.h"

const char *mig_role_to_string(MigRole r) {
        static const char *const names[_MIG_ROLE_MAX] = {
                [MIG_NONE] = "none",
                [MIG_OWNER] = "owner",
                [MIG_FROZEN] = "frozen",
                [MIG_HANDED_OFF] = "handed-off",
                [MIG_CLOSED] = "closed",
                [MIG_INCOMING] = "incoming",
                [MIG_PROVISIONAL] = "provisional",
                [MIG_GONE] = "gone",
        };

        return (unsigned) r < _MIG_ROLE_MAX ? names[r] : NULL;
}

static bool live(const MigVm *v) {
        return v->role == MIG_OWNER || v->role == MIG_PROVISIONAL;
}

void mig_vm_own(MigVm *v, const VmId *vm, const CreditSpec *spec, const CreditLedger *ledger, uint64_t now_usec,
                uint64_t usage_counter_usec) {
        *v = (MigVm){ .vm = *vm,
                      .role = MIG_OWNER,
                      .spec = *spec,
                      .ledger_time_usec = now_usec,
                      .usage_base_usec = usage_counter_usec };
        if (ledger)
                v->ledger = *ledger;
        else
                credit_ledger_init(&v->ledger, spec);
}

/* Charges earnings and use up to now; the ledger of a frozen VM too (the
 * freeze and a revert account with it). */
static void account(MigVm *v, uint64_t now_usec, uint64_t counter) {
        uint64_t wall = now_usec > v->ledger_time_usec ? now_usec - v->ledger_time_usec : 0;

        /* A counter below the base is another QEMU process: all of it is new use. */
        credit_ledger_advance(&v->ledger, &v->spec, wall,
                       counter >= v->usage_base_usec ? counter - v->usage_base_usec : counter);
        if (now_usec > v->ledger_time_usec)
                v->ledger_time_usec = now_usec;
        v->usage_base_usec = counter;
}

void mig_vm_account(MigVm *v, uint64_t now_usec, uint64_t usage_counter_usec) {
        if (live(v))
                account(v, now_usec, usage_counter_usec);
}

int64_t mig_vm_available(const MigVm *v) {
        return live(v) ? credit_ledger_available(&v->ledger) : 0;
}

/* ---- source ------------------------------------------------------------- */

int mig_src_start(MigVm *v, const char *destination) {
        if (v->role != MIG_OWNER)
                return -EBUSY;
        v->outgoing = true;
        snprintf(v->destination, sizeof(v->destination), "%s", destination ? destination : "");
        return 0;
}

int mig_src_freeze(MigVm *v, uint64_t now_usec, uint64_t usage_counter_usec, const char *source_host) {
        if (v->role != MIG_OWNER)
                return -EALREADY;
        if (!v->outgoing)
                return -ENOENT;
        account(v, now_usec, usage_counter_usec);
        v->role = MIG_FROZEN;
        v->record = (MigRecord){
                .vm = v->vm, .epoch = v->epoch + 1, .spec = v->spec, .ledger = v->ledger, .frozen_at_usec = now_usec
        };
        snprintf(v->record.source, sizeof(v->record.source), "%s", source_host ? source_host : "");
        return 0;
}

int mig_src_outcome(MigVm *v, MigOutcome outcome) {
        if (v->role != MIG_FROZEN)
                return -EPROTO;
        if (outcome == MIG_FAILED) {
                /* The ledger stays as frozen; the next look charges what the
                 * resumed QEMU used since and credits the time since. */
                v->role = MIG_OWNER;
                v->record = (MigRecord){ 0 };
                v->outgoing = false;
        } else
                v->role = MIG_HANDED_OFF;
        return 0;
}

const MigRecord *mig_src_pending_record(const MigVm *v) {
        return v->role == MIG_HANDED_OFF ? &v->record : NULL;
}

int mig_src_ack(MigVm *v, uint64_t epoch) {
        if (v->role != MIG_HANDED_OFF || epoch != v->record.epoch)
                return 0;
        v->role = MIG_CLOSED;
        v->outgoing = false;
        v->epoch = epoch; /* the ledger's owner is now at this epoch, elsewhere */
        return 1;
}

/* Nobody took the ledger: it is this host's again at the same epoch,
 * accounted on from the freeze (the earnings meanwhile are the VM's; a
 * source QEMU resumed by the tool is charged by its counter). */
static int take_back(MigVm *v, uint64_t now_usec, uint64_t usage_counter_usec) {
        v->role = MIG_OWNER;
        v->record = (MigRecord){ 0 };
        v->outgoing = false;
        account(v, now_usec, usage_counter_usec);
        return 1;
}

int mig_src_nack(MigVm *v, uint64_t epoch, uint64_t now_usec, uint64_t usage_counter_usec) {
        if (v->role != MIG_HANDED_OFF || epoch != v->record.epoch)
                return 0;
        return take_back(v, now_usec, usage_counter_usec);
}

int mig_src_resumed(MigVm *v, uint64_t now_usec, uint64_t usage_counter_usec) {
        if (v->role != MIG_HANDED_OFF)
                return 0;
        return take_back(v, now_usec, usage_counter_usec);
}

/* ---- destination --------------------------------------------------------- */

void mig_dst_incoming(MigVm *v, const VmId *vm, const CreditSpec *spec, uint64_t usage_counter_usec) {
        *v = (MigVm){ .vm = *vm, .role = MIG_INCOMING, .spec = *spec, .usage_base_usec = usage_counter_usec };
}

int mig_dst_resume(MigVm *v, uint64_t now_usec) {
        CreditSpec provisional;

        if (v->role != MIG_INCOMING)
                return -EPROTO;
        /* Baseline only: nothing banked, no launch credits; it earns from now. */
        provisional = v->spec;
        provisional.launch_usec = 0;
        credit_ledger_init(&v->ledger, &provisional);
        v->ledger_time_usec = now_usec;
        v->resumed_at_usec = now_usec;
        v->role = MIG_PROVISIONAL;
        return 0;
}

int mig_dst_resume_late(MigVm *v, uint64_t now_usec) {
        int r = mig_dst_resume(v, now_usec);

        if (r == 0)
                v->resume_late = true;
        return r;
}

int mig_dst_gone(MigVm *v) {
        if (v->role != MIG_INCOMING)
                return -EPROTO;
        v->role = MIG_GONE;
        return 0;
}

/* Brings the frozen ledger to now: the downtime (freeze to resume: QEMU
 * stopped) only earns; in the provisional window (resume to now) the VM
 * earned and spent at once. */
static void merge_since_freeze(CreditLedger *m, const CreditSpec *s, uint64_t frozen_at, uint64_t resumed_at,
                               uint64_t now, uint64_t used) {
        uint64_t resume = MIN(MAX(resumed_at, frozen_at), MAX(now, frozen_at));

        if (resume > frozen_at)
                credit_ledger_accrue(m, s, resume - frozen_at);
        credit_ledger_advance(m, s, now > resume ? now - resume : 0, used);
}

MigReply mig_dst_record(MigVm *v, const MigRecord *rec, uint64_t now_usec, uint64_t usage_counter_usec,
                        bool *ret_changed) {
        CreditLedger merged;
        uint64_t used, resumed_at;

        *ret_changed = false;
        switch (v->role) {
        case MIG_OWNER:
                /* Applied before (a duplicate or a late resend): say so again. */
                return v->epoch >= rec->epoch ? MIG_REPLY_ACK : MIG_REPLY_NONE;
        case MIG_GONE:
                return MIG_REPLY_NACK;
        case MIG_PROVISIONAL:
                break;
        default: /* unknown yet, or not resumed: the source sends it again */
                return MIG_REPLY_NONE;
        }
        account(v, now_usec, usage_counter_usec);
        used = v->ledger.spent_usec;
        /* The frozen ledger, the policy's earnings from the freeze until
         * now (downtime included: the provisional bank's own earnings are
         * not added, so nothing is counted twice), and the use since
         * resume. */
        merged = rec->ledger;
        resumed_at = v->resumed_at_usec;
        if (v->resume_late) {
                /* Held at its provisional baseline since it resumed: it
                 * resumed no later than its use says. */
                uint64_t rate = (uint64_t) credit_earn_per_sec(&v->spec);
                uint64_t ran = rate ? (uint64_t) ((unsigned __int128) used * USEC_PER_SEC / rate) : 0;

                if (ran < now_usec && now_usec - ran < resumed_at)
                        resumed_at = now_usec - ran;
        }
        merge_since_freeze(&merged, &rec->spec, rec->frozen_at_usec, resumed_at, now_usec, used);
        merged.generation++;
        v->ledger = merged;
        v->spec = rec->spec;
        v->epoch = rec->epoch;
        v->ledger_time_usec = now_usec;
        v->role = MIG_OWNER;
        *ret_changed = true;
        return MIG_REPLY_ACK;
}
