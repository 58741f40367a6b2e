/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/engine/memory-engine.c - the memory policies applied to real (or model)
 * memcgs; see memory-engine.h.  The decisions are policies/memory.c's;
 * this file reads, writes, schedules looks and keeps the counters.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "vmmgr/engine/memory-engine.h"

#define LOOK_MIN_USEC UINT64_C(100000)
#define LOOK_MAX_USEC UINT64_C(1000000)
#define HOST_LOOK_USEC UINT64_C(1000000)

typedef struct DmemState {
        char region[DMEM_REGION_NAME_MAX];
        bool over, written; /* over its soft target (stock kernels); limits written */
} DmemState;

typedef struct MemVm {
        VmId id;
        MemPolVmSpec spec;
        MemPolVmLimits limits;
        MemLimits applied;
        MemPolVmState state;
        MemPolCounters last;
        bool have_last;
        MemStat stat;
        KhMemCurrentReader *current; /* the quick check between looks; NULL: none */
        MemPolVmDecision dec;
        uint64_t next_look_usec;
        uint64_t due_bytes;   /* reclaim to submit this tick */
        uint64_t host_ask;    /* the host plan's reclaim, last plan */
        uint64_t host_balloon;
        bool throttle_applied;
        /* balloon */
        uint64_t balloon_target, balloon_actual;
        bool balloon_pending;
        /* dmem */
        bool has_dmem;
        char dmem_pci[32];
        MemPolDmemSpec dmem_spec;
        DmemState *dmem;
        size_t n_dmem;
        /* counters */
        uint64_t looks, reclaim_requests, reclaim_bytes, reclaim_busy_usec, reclaim_partial, reclaim_errors;
        uint64_t background_bytes, proactive_bytes, host_bytes;
        int last_error;
} MemVm;

struct MemEngine {
        KHost *host;
        MemEngineOptions opt;
        ReclaimPool *pool;
        unsigned ncpus;
        MemVm **vms;
        size_t n_vms;
        size_t n_balloon_pending; /* VMs with balloon_pending: the owner's loop skips them all when 0 */
        uint64_t pool_warned_usec; /* log_ratelimit() of worker start failures */
        uint64_t next_host_usec;
        /* What one worker really reclaims per second here (from the pool's
         * results; 0 until known): the pool is sized by it when lower than
         * the policy's figure, which a slow or busy host does not reach. */
        uint64_t worker_rate;
        /* vmmgr's subtree's own memory.min/low as last written (sums). */
        uint64_t subtree_min, subtree_low;
        bool subtree_written;
        bool host_known;
        uint64_t host_total, host_used;
        MemPolHostPlan plan;
};

void mem_engine_options_default(MemEngineOptions *o) {
        *o = (MemEngineOptions) { .threads = true };
        mempol_default(&o->policy);
}

static MemVm *find_vm(MemEngine *e, const VmId *id, size_t *ret_index) {
        for (size_t i = 0; i < e->n_vms; i++)
                if (vm_id_equal(&e->vms[i]->id, id)) {
                        if (ret_index)
                                *ret_index = i;
                        return e->vms[i];
                }
        return NULL;
}

int mem_engine_new(KHost *h, const MemEngineOptions *o, MemEngine **ret) {
        _cleanup_free_ MemEngine *e = NULL;
        const char *field = NULL;
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned max;
        int r;

        if (!kh_manages(h, CG_CTRL_MEMORY) || kh_controller_version(h, CG_CTRL_MEMORY) != CG_V2)
                return -EOPNOTSUPP;
        r = mempol_validate(&o->policy, &field);
        if (r < 0) {
                log_error("memory policy: bad value for %s", field ? field : "?");
                return r;
        }
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->host = h;
        e->opt = *o;
        e->ncpus = cpus > 0 ? (unsigned) cpus : 1;
        max = o->policy.reclaim.max_threads ? o->policy.reclaim.max_threads : e->ncpus;
        /* Workers start when there is work (mempol_pool_threads()). */
        r = reclaim_pool_new(h, 0, o->threads ? max : 0, &e->pool);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(e);
        return 0;
}

static void vm_free(MemVm *v) {
        if (!v)
                return;
        kh_mem_current_reader_free(v->current);
        free(v->dmem);
        free(v);
}

MemEngine *mem_engine_free(MemEngine *e) {
        if (!e)
                return NULL;
        reclaim_pool_free(e->pool);
        for (size_t i = 0; i < e->n_vms; i++)
                vm_free(e->vms[i]);
        free(e->vms);
        free(e);
        return NULL;
}

int mem_engine_fd(const MemEngine *e) {
        return reclaim_pool_fd(e->pool);
}

void mem_engine_collect(MemEngine *e) {
        ReclaimResult res[32];
        size_t n;

        while ((n = reclaim_pool_collect(e->pool, res, ARRAY_SIZE(res))) > 0)
                for (size_t i = 0; i < n; i++) {
                        MemVm *v = find_vm(e, &res[i].vm, NULL);

                        if (!v)
                                continue; /* removed meanwhile */
                        if (res[i].busy_usec >= 1000 && res[i].done > 0) {
                                uint64_t rate = (uint64_t) ((unsigned __int128) res[i].done * USEC_PER_SEC /
                                                            res[i].busy_usec);
                                /* Moving average over about 8 results. */
                                e->worker_rate = e->worker_rate ? e->worker_rate - e->worker_rate / 8 + rate / 8
                                                                : rate;
                        }
                        v->reclaim_requests++;
                        v->reclaim_bytes += res[i].done;
                        v->reclaim_busy_usec += res[i].busy_usec;
                        if (res[i].error == -EAGAIN)
                                v->reclaim_partial++;
                        else if (res[i].error < 0 && res[i].error != -EINTR) {
                                v->reclaim_errors++;
                                v->last_error = res[i].error;
                        }
                }
}

/* ---- limits ------------------------------------------------------------- */

static int apply_limits(MemEngine *e, MemVm *v) {
        MemLimits lim = {
                .set = MEM_SET_MAX | MEM_SET_HIGH | MEM_SET_LOW | MEM_SET_MIN | MEM_SET_SWAP_MAX,
                .max = v->limits.max,
                .high = v->limits.high,
                .low = v->state.low,
                .min = v->limits.min,
                .swap_max = v->limits.swap_max,
        };
        int r = kh_mem_set_limits(e->host, &v->id, &lim, &v->applied);

        if (r < 0)
                v->last_error = r;
        return r;
}

static void lift_throttle(MemEngine *e, MemVm *v) {
        CpuBandwidth bw = { .period_usec = e->opt.policy.throttle.period_usec, .quota_usec = CPU_QUOTA_MAX };

        if (!v->throttle_applied)
                return;
        (void) kh_cpu_set_bandwidth(e->host, &v->id, CG_ROLE_EMULATOR, &bw, NULL);
        (void) kh_cpu_set_bandwidth(e->host, &v->id, CG_ROLE_IO, &bw, NULL);
        v->throttle_applied = false;
}

int mem_engine_vm_add(MemEngine *e, const VmId *vm, const MemPolVmSpec *spec, uint64_t now_usec) {
        MemVm *v, **n;
        int r;

        if (find_vm(e, vm, NULL))
                return -EEXIST;
        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        v->id = *vm;
        v->spec = *spec;
        r = mempol_vm_limits(&e->opt.policy, spec, &v->limits);
        if (r == 0) {
                mempol_vm_state_init(&v->state, &v->limits);
                r = apply_limits(e, v);
        }
        if (r < 0) {
                vm_free(v);
                return r;
        }
        n = realloc(e->vms, (e->n_vms + 1) * sizeof(*n));
        if (!n) {
                vm_free(v);
                return -ENOMEM;
        }
        e->vms = n;
        v->balloon_target = v->balloon_actual = v->limits.ram;
        v->next_look_usec = now_usec;
        /* A throttle a previous vmmgrd left (it exited, or was killed,
         * while the VM was over) would otherwise stay: the engine is the
         * only writer of these groups' cpu.max, so it starts from none. */
        v->throttle_applied = true;
        lift_throttle(e, v);
        if (kh_mem_current_reader_open(e->host, vm, &v->current) < 0)
                v->current = NULL; /* scheduled looks only */
        e->vms[e->n_vms++] = v;
        return 0;
}

int mem_engine_vm_set_spec(MemEngine *e, const VmId *vm, const MemPolVmSpec *spec) {
        MemPolVmLimits l;
        MemVm *v = find_vm(e, vm, NULL);
        int r;

        if (!v)
                return -ENOENT;
        r = mempol_vm_limits(&e->opt.policy, spec, &l);
        if (r < 0)
                return r;
        v->spec = *spec;
        v->limits = l;
        /* Protection learnt so far stays, within the new bounds. */
        v->state.low = MIN(MAX(v->state.low, l.low_floor), l.max);
        if (!l.balloon)
                v->balloon_target = v->balloon_actual = l.ram;
        return apply_limits(e, v);
}

int mem_engine_vm_set_dmem(MemEngine *e, const VmId *vm, const char *pci_addr, const MemPolDmemSpec *spec) {
        MemVm *v = find_vm(e, vm, NULL);

        if (!v)
                return -ENOENT;
        free(v->dmem);
        v->dmem = NULL;
        v->n_dmem = 0;
        v->has_dmem = false;
        if (!pci_addr)
                return 0;
        if (strlen(pci_addr) >= sizeof(v->dmem_pci) || strchr(pci_addr, '/') || !spec)
                return -EINVAL;
        if (!(spec->min <= spec->low && spec->low <= spec->soft && spec->soft <= spec->max))
                return -EINVAL;
        strcpy(v->dmem_pci, pci_addr);
        v->dmem_spec = *spec;
        v->has_dmem = true;
        return 0;
}


void mem_engine_vm_remove(MemEngine *e, const VmId *vm) {
        size_t i;
        MemVm *v = find_vm(e, vm, &i);

        if (!v)
                return;
        reclaim_pool_cancel(e->pool, vm);
        lift_throttle(e, v);
        e->n_balloon_pending -= v->balloon_pending;
        vm_free(v);
        memmove(e->vms + i, e->vms + i + 1, (e->n_vms - i - 1) * sizeof(*e->vms));
        e->n_vms--;
}

void mem_engine_vm_balloon_actual(MemEngine *e, const VmId *vm, uint64_t actual) {
        MemVm *v = find_vm(e, vm, NULL);

        if (v)
                v->balloon_actual = actual;
}

size_t mem_engine_balloon_pending(const MemEngine *e) {
        return e->n_balloon_pending;
}

bool mem_engine_vm_balloon_request(MemEngine *e, const VmId *vm, uint64_t *ret_target) {
        MemVm *v = find_vm(e, vm, NULL);

        if (!v || !v->balloon_pending)
                return false;
        v->balloon_pending = false;
        e->n_balloon_pending--;
        *ret_target = v->balloon_target;
        return true;
}

/* ---- looks -------------------------------------------------------------- */

static void apply_throttle(MemEngine *e, MemVm *v, const MemPolThrottle *t) {
        CpuBandwidth bw = { .period_usec = t->period_usec };
        int r;

        bw.quota_usec = t->emulator_quota_usec == MEMPOL_QUOTA_MAX ? CPU_QUOTA_MAX : t->emulator_quota_usec;
        /* (It returns how many of its writes refilled: >= 0 is success.) */
        r = kh_cpu_set_bandwidth(e->host, &v->id, CG_ROLE_EMULATOR, &bw, NULL);
        bw.quota_usec = t->io_quota_usec == MEMPOL_QUOTA_MAX ? CPU_QUOTA_MAX : t->io_quota_usec;
        if (r >= 0)
                r = kh_cpu_set_bandwidth(e->host, &v->id, CG_ROLE_IO, &bw, NULL);
        /* A libvirt domain has one group per iothread and none for all of
         * them (kernel.h): its emulator is throttled, its iothreads not. */
        if (r == -EOPNOTSUPP && kh_vm_foreign_group(e->host, &v->id))
                r = 0;
        if (r < 0)
                v->last_error = r;
        v->throttle_applied = t->on;
}

static DmemState *dmem_state(MemVm *v, const char *region) {
        DmemState *n;

        for (size_t i = 0; i < v->n_dmem; i++)
                if (strcmp(v->dmem[i].region, region) == 0)
                        return &v->dmem[i];
        n = realloc(v->dmem, (v->n_dmem + 1) * sizeof(*n));
        if (!n)
                return NULL;
        v->dmem = n;
        n = &v->dmem[v->n_dmem++];
        *n = (DmemState) { 0 };
        snprintf(n->region, sizeof(n->region), "%s", region);
        return n;
}

static int write_dmem(MemEngine *e, MemVm *v, const char *region, const MemPolDmemLimits *l) {
        int r = kh_dmem_set(e->host, &v->id, region, DMEM_LIMIT_MAX, l->max);

        if (r == 0)
                r = kh_dmem_set(e->host, &v->id, region, DMEM_LIMIT_MIN, l->min);
        if (r == 0)
                r = kh_dmem_set(e->host, &v->id, region, DMEM_LIMIT_LOW, l->low);
        if (r == 0 && l->write_high)
                r = kh_dmem_set(e->host, &v->id, region, DMEM_LIMIT_HIGH, l->high);
        return r;
}

/* One use of a region by one VM, for the region's decision. */
typedef struct DmemUse {
        MemVm *vm;
        DmemState *state;
        uint64_t current;
} DmemUse;

/* dmem, once a second: a region's eviction order is decided over every VM
 * using it (mempol_dmem_decide()), so the uses are gathered first. */
static void plan_dmem(MemEngine *e) {
        _cleanup_free_ DmemUse *uses = NULL;
        size_t n_uses = 0;

        for (size_t i = 0; i < e->n_vms; i++) {
                _cleanup_free_ DmemRegion *regs = NULL;
                MemVm *v = e->vms[i];
                char prefix[48];
                size_t n = 0, plen;
                int r;

                if (!v->has_dmem)
                        continue;
                r = kh_dmem_read(e->host, &v->id, &regs, &n);
                if (r < 0) {
                        v->last_error = r;
                        continue;
                }
                plen = (size_t) snprintf(prefix, sizeof(prefix), "drm/%s/", v->dmem_pci);
                for (size_t k = 0; k < n; k++) {
                        DmemUse *nu;
                        DmemState *st;

                        if (strncmp(regs[k].name, prefix, plen) != 0 || !(st = dmem_state(v, regs[k].name)))
                                continue;
                        nu = realloc(uses, (n_uses + 1) * sizeof(*nu));
                        if (!nu)
                                return;
                        uses = nu;
                        uses[n_uses++] = (DmemUse) { .vm = v, .state = st, .current = regs[k].current };
                }
        }
        for (size_t i = 0; i < n_uses; i++) {
                _cleanup_free_ MemPolDmemVm *in = NULL;
                _cleanup_free_ MemPolDmemLimits *out = NULL;
                _cleanup_free_ size_t *idx = NULL;
                const char *region = uses[i].state->region;
                size_t m = 0;
                bool seen = false;

                for (size_t k = 0; k < i && !seen; k++)
                        seen = strcmp(uses[k].state->region, region) == 0;
                if (seen)
                        continue; /* decided with its first use */
                in = calloc(n_uses - i, sizeof(*in));
                out = calloc(n_uses - i, sizeof(*out));
                idx = calloc(n_uses - i, sizeof(*idx));
                if (!in || !out || !idx)
                        return;
                for (size_t k = i; k < n_uses; k++)
                        if (strcmp(uses[k].state->region, region) == 0) {
                                in[m] = (MemPolDmemVm) { .spec = uses[k].vm->dmem_spec,
                                                         .current = uses[k].current,
                                                         .over = uses[k].state->over };
                                idx[m++] = k;
                        }
                if (mempol_dmem_decide(&e->opt.policy, e->opt.dmem_high, in, m, out) < 0)
                        continue;
                for (size_t k = 0; k < m; k++) {
                        DmemUse *u = &uses[idx[k]];
                        int r;

                        u->state->over = in[k].over;
                        if (u->state->written && !out[k].low_changed)
                                continue;
                        r = write_dmem(e, u->vm, region, &out[k]);
                        if (r < 0)
                                u->vm->last_error = r;
                        else
                                u->state->written = true;
                }
        }
}

/* When to look next: before the growth seen could take the VM to its high
 * watermark (half that time), every 100 ms while reclaiming or above it,
 * at most a second apart. */
static uint64_t next_look_in(const MemVm *v, uint64_t growth_per_sec) {
        uint64_t room, t;

        if (v->state.reclaiming || v->stat.current >= v->limits.wmark_high)
                return LOOK_MIN_USEC;
        room = v->limits.wmark_high - v->stat.current;
        if (growth_per_sec == 0)
                return LOOK_MAX_USEC;
        t = (uint64_t) ((unsigned __int128) room * USEC_PER_SEC / growth_per_sec / 2);
        return MIN(MAX(t, LOOK_MIN_USEC), LOOK_MAX_USEC);
}

static void look(MemEngine *e, MemVm *v, uint64_t now) {
        MemPolCounters c;
        MemPolSample smp;
        MemStat st;
        int r;

        v->due_bytes = 0;
        r = kh_mem_read(e->host, &v->id, &st);
        if (r < 0) {
                v->last_error = r;
                v->next_look_usec = now + LOOK_MAX_USEC;
                return;
        }
        v->stat = st;
        v->looks++;
        c = (MemPolCounters) {
                .at_usec = now,
                .current = st.current,
                .refault_anon = st.workingset_refault_anon,
                .refault_file = st.workingset_refault_file,
                .pgsteal = st.pgsteal,
                .psi_some_total_usec = st.pressure.some_total_usec,
                .psi_some_avg10 = st.pressure.some_avg10,
        };
        if (!v->have_last || mempol_sample(&v->last, &c, &smp) < 0) {
                /* The first look (or a clock that did not move): only the
                 * watermark, which needs no interval. */
                v->last = c;
                v->have_last = true;
                v->due_bytes = mempol_background(&e->opt.policy, &v->limits, &v->state, st.current);
                v->background_bytes += v->due_bytes;
                if (mempol_throttle(&e->opt.policy, &v->limits, &v->state, st.current, &v->dec.throttle))
                        apply_throttle(e, v, &v->dec.throttle);
                v->next_look_usec = now + LOOK_MIN_USEC; /* soon: the growth is not known yet */
                return;
        }
        v->last = c;
        r = mempol_vm_tick(&e->opt.policy, &v->limits, e->opt.kernel_swappiness, &v->state, &smp, &v->dec);
        if (r < 0) {
                v->last_error = r;
                v->next_look_usec = now + LOOK_MAX_USEC;
                return;
        }
        if (v->dec.low_changed) {
                MemLimits lim = { .set = MEM_SET_LOW, .low = v->dec.low }, got;

                r = kh_mem_set_limits(e->host, &v->id, &lim, &got);
                if (r < 0)
                        v->last_error = r;
                else
                        v->applied.low = got.low;
        }
        if (v->dec.throttle_changed)
                apply_throttle(e, v, &v->dec.throttle);
        v->due_bytes = v->dec.reclaim_bytes;
        v->background_bytes += v->dec.background_bytes;
        v->proactive_bytes += v->dec.proactive_bytes;
        v->next_look_usec = now + next_look_in(v, smp.growth_bytes_per_sec);
}

/* The host ceiling, once a second, from each VM's last look. */
static int look_host(MemEngine *e) {
        _cleanup_free_ MemPolHostVm *in = NULL;
        _cleanup_free_ MemPolHostVmPlan *out = NULL;
        MemPolHostUse use;
        uint64_t growth = 0;
        int r;

        r = kh_host_memory(e->host, &e->host_total, &e->host_used);
        e->host_known = r == 0;
        if (r < 0)
                return r == -EOPNOTSUPP ? 0 : r;
        in = calloc(MAX(e->n_vms, (size_t) 1), sizeof(*in));
        out = calloc(MAX(e->n_vms, (size_t) 1), sizeof(*out));
        if (!in || !out)
                return -ENOMEM;
        for (size_t i = 0; i < e->n_vms; i++) {
                mempol_host_vm(&e->vms[i]->limits, &e->vms[i]->state, e->vms[i]->stat.current,
                               e->vms[i]->balloon_actual, &in[i]);
                growth = growth + e->vms[i]->dec.growth_bytes_per_sec < growth
                                 ? UINT64_MAX
                                 : growth + e->vms[i]->dec.growth_bytes_per_sec;
        }
        use = (MemPolHostUse) { .total = e->host_total,
                                .used = e->host_used,
                                .growth = mempol_host_growth(growth, HOST_LOOK_USEC) };
        r = mempol_host_plan(&e->opt.policy, &use, in, e->n_vms, out, &e->plan);
        if (r < 0)
                return r;
        for (size_t i = 0; i < e->n_vms; i++) {
                MemVm *v = e->vms[i];

                v->host_ask = out[i].reclaim;
                v->host_balloon = out[i].balloon;
                if (out[i].reclaim > v->due_bytes) {
                        v->host_bytes += out[i].reclaim - v->due_bytes;
                        v->due_bytes = out[i].reclaim;
                }
        }
        return 0;
}

static void decide_balloon(MemEngine *e, MemVm *v) {
        MemPolBalloonInput in = {
                .current = v->stat.current,
                .actual = v->balloon_actual,
                .target = v->balloon_target,
                .host_ask = v->host_balloon,
                .host_headroom = e->host_known ? e->plan.headroom : 0,
                .reclaiming = v->state.reclaiming,
        };
        uint64_t target;

        if (!v->limits.balloon)
                return;
        if (mempol_balloon_decide(&v->limits, &in, &target)) {
                v->balloon_target = target;
                e->n_balloon_pending += !v->balloon_pending;
                v->balloon_pending = true;
        }
}

/* The subtree's protection covers its VMs' (kh_subtree_set_mem_protection()
 * says why): rewritten when the sums change. */
static void protect_subtree(MemEngine *e) {
        uint64_t min = 0, low = 0;
        int r;

        for (size_t i = 0; i < e->n_vms; i++) {
                min += e->vms[i]->limits.min;
                low += MAX(e->vms[i]->state.low, e->vms[i]->limits.min);
        }
        if (e->subtree_written && min == e->subtree_min && low == e->subtree_low)
                return;
        r = kh_subtree_set_mem_protection(e->host, min, low);
        if (r < 0) {
                log_debug_errno(r, "Memory: cannot set the subtree's protection: %m");
                return;
        }
        e->subtree_min = min;
        e->subtree_low = low;
        e->subtree_written = true;
}

int mem_engine_tick(MemEngine *e, uint64_t now_usec) {
        KhReadBatch *batch = kh_read_batch(e->host);
        MemPolPoolDemand demand = { 0 };
        bool host_due = now_usec >= e->next_host_usec;
        int r = 0;

        mem_engine_collect(e);
        /* Between looks, memory.current: a burst that reached the high
         * watermark is looked at now, not when the schedule (made from the
         * growth seen so far) says.  Read for every such VM in one go on
         * the host's read batch (kernel.h), where there is one. */
        if (batch) {
                for (size_t i = 0; i < e->n_vms; i++)
                        if (now_usec < e->vms[i]->next_look_usec && e->vms[i]->current)
                                kh_mem_current_reader_queue(e->vms[i]->current);
                (void) kh_read_batch_run(batch);
        }
        for (size_t i = 0; i < e->n_vms; i++) {
                MemVm *v = e->vms[i];
                uint64_t current;
                bool due = now_usec >= v->next_look_usec;

                if (!due && v->current && kh_mem_current_reader_read(v->current, &current) == 0)
                        due = current >= v->limits.wmark_high;
                v->due_bytes = 0;
                if (due)
                        look(e, v, now_usec);
        }
        if (batch)
                kh_read_batch_discard(batch);
        if (host_due) {
                e->next_host_usec = now_usec + HOST_LOOK_USEC;
                r = look_host(e);
                for (size_t i = 0; i < e->n_vms; i++)
                        decide_balloon(e, e->vms[i]);
                plan_dmem(e);
                protect_subtree(e);
        }
        for (size_t i = 0; i < e->n_vms; i++) {
                MemVm *v = e->vms[i];
                uint64_t chunk = v->dec.chunk_bytes ? v->dec.chunk_bytes : e->opt.policy.reclaim.chunk_bytes;
                int swappiness = v->dec.chunk_bytes ? v->dec.swappiness : -1;

                if (v->due_bytes > 0) {
                        int q = reclaim_pool_submit(e->pool, &v->id, v->due_bytes, chunk, swappiness, 0);
                        if (q < 0)
                                v->last_error = q;
                }
                if (reclaim_pool_busy(e->pool, &v->id))
                        mempol_pool_demand_add(&demand, v->dec.growth_bytes_per_sec, MAX(v->due_bytes, 1));
        }
        if (e->opt.threads) {
                MemPolicy p = e->opt.policy;
                int q;

                if (e->worker_rate > 0 && e->worker_rate < p.reclaim.thread_bytes_per_sec)
                        p.reclaim.thread_bytes_per_sec = e->worker_rate;
                q = reclaim_pool_set_threads(e->pool, mempol_pool_threads(&p, e->ncpus, &demand));
                if (q < 0 && log_ratelimit(&e->pool_warned_usec, now_usec, 60 * USEC_PER_SEC))
                        log_warning("reclaim pool: cannot start workers (said once a minute): %s", strerror(-q));
        } else {
                reclaim_pool_run_pending(e->pool);
                mem_engine_collect(e);
        }
        return r;
}

/* ---- reports ------------------------------------------------------------ */

int mem_engine_vm_report(MemEngine *e, const VmId *vm, MemVmReport *ret) {
        MemVm *v = find_vm(e, vm, NULL);

        if (!v)
                return -ENOENT;
        *ret = (MemVmReport) {
                .spec = v->spec,
                .limits = v->limits,
                .applied = v->applied,
                .state = v->state,
                .stat = v->stat,
                .balloon_target = v->balloon_target,
                .balloon_actual = v->balloon_actual,
                .looks = v->looks,
                .reclaim_requests = v->reclaim_requests,
                .reclaim_bytes = v->reclaim_bytes,
                .reclaim_busy_usec = v->reclaim_busy_usec,
                .reclaim_partial = v->reclaim_partial,
                .reclaim_errors = v->reclaim_errors,
                .background_bytes = v->background_bytes,
                .proactive_bytes = v->proactive_bytes,
                .host_bytes = v->host_bytes,
                .last_error = v->last_error,
                .has_dmem = v->has_dmem,
        };
        mempol_headroom(&v->limits, v->stat.current, v->balloon_actual, &ret->headroom);
        if (v->has_dmem)
                snprintf(ret->dmem_pci, sizeof(ret->dmem_pci), "%s", v->dmem_pci);
        for (size_t i = 0; i < v->n_dmem; i++)
                ret->dmem_demoted += v->dmem[i].over;
        return 0;
}

void mem_engine_host_report(MemEngine *e, MemHostReport *ret) {
        *ret = (MemHostReport) {
                .known = e->host_known,
                .total = e->host_total,
                .used = e->host_used,
                .plan = e->plan,
                .pool_threads = reclaim_pool_threads(e->pool),
                .pool_max_threads = reclaim_pool_max_threads(e->pool),
                .vms = e->n_vms,
        };
        reclaim_pool_stats(e->pool, &ret->pool);
}
