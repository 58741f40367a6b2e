/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kernel/model/model-mem.c - memcg (memory.*) and dmem (dmem.*) in the model.
 *
 * Memory is two kinds of charge per memcg: reclaimable (page cache, or
 * anon that could be swapped) and unreclaimable.  Usage is hierarchical
 * like the kernel's page_counter.  Reclaim frees reclaimable bytes from a
 * target memcg's subtree, honouring its descendants' effective memory.min
 * and memory.low (mm/memcontrol.c: mem_cgroup_calculate_protection(),
 * effective_protection() with memory_recursiveprot).  The target's own
 * protection is ignored, as in the kernel.  Reclaimed bytes leave shadow
 * entries: charging reclaimable memory again counts as refaults.
 *
 * Reclaim takes no model time; a thread that reclaims directly is charged
 * stall time at KM_RECLAIM_BYTES_PER_SEC instead.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "common/parse.h"
#include "kernel/model/model-internal.h"

typedef unsigned __int128 u128;

/* PAGE_COUNTER_MAX = LONG_MAX / PAGE_SIZE pages: anything above is "max". */
#define PAGE_COUNTER_MAX_BYTES ((UINT64_C(0x7fffffffffffffff) / KM_PAGE_SIZE) * KM_PAGE_SIZE)
#define MAX_SWAPPINESS 200

static uint64_t page_down(uint64_t v) {
        return v / KM_PAGE_SIZE * KM_PAGE_SIZE;
}

void km_memcg_init(KmMemcg *mc) {
        memset(mc, 0, sizeof(*mc));
        mc->high = mc->max = mc->swap_max = UINT64_MAX;
}

static bool has_memcg(KModel *m, KmGroup *g) {
        return m->version == CG_V2 && km_ctrl_enabled(m, g, CG_CTRL_MEMORY);
}

/* Memcgs form a contiguous tree from the root (a child can only get the
 * controller through its parent), so descendants are found by skipping
 * subtrees without it. */
static KmGroup *next_memcg(KModel *m, KmGroup *g, KmGroup *top) {
        KmGroup *c = km_group_next_pre(g, top);

        while (c && !has_memcg(m, c))
                c = km_group_next_skip(c, top);
        return c;
}

/* memcg_memory_event(): counted here and in every ancestor but the root. */
static void memcg_event(KmGroup *g, int ev) {
        g->mem.events_local[ev]++;
        for (; g->parent; g = g->parent)
                g->mem.events[ev]++;
}

static void memcg_stat_up(KmGroup *g, uint64_t *(*field)(KmMemcg *), uint64_t n) {
        for (; g; g = g->parent)
                *field(&g->mem) += n;
}

static uint64_t *f_pgscan(KmMemcg *mc) {
        return &mc->pgscan;
}
static uint64_t *f_pgsteal(KmMemcg *mc) {
        return &mc->pgsteal;
}
static uint64_t *f_pgmajfault(KmMemcg *mc) {
        return &mc->pgmajfault;
}
static uint64_t *f_refault_file(KmMemcg *mc) {
        return &mc->refault_file;
}

static void usage_add(KmGroup *g, uint64_t bytes) {
        for (; g; g = g->parent) {
                g->mem.usage += bytes;
                g->mem.peak = MAX(g->mem.peak, g->mem.usage);
        }
}

static void usage_sub(KmGroup *g, uint64_t bytes) {
        for (; g; g = g->parent)
                g->mem.usage -= MIN(g->mem.usage, bytes);
}

/* ---- protection and reclaim ----------------------------------------- */

/* effective_protection() with CGRP_ROOT_MEMORY_RECURSIVE_PROT, the mount
 * option systemd uses: overcommitted protection is shared in proportion to
 * use; unclaimed protection of the parent flows to unprotected use. */
static uint64_t effective_protection(uint64_t usage, uint64_t parent_usage, uint64_t setting,
                                     uint64_t parent_effective, uint64_t siblings_protected) {
        uint64_t protected = MIN(usage, setting), ep;

        if (siblings_protected > parent_effective)
                return (uint64_t) ((u128) protected * parent_effective / siblings_protected);
        ep = protected;
        if (parent_effective > siblings_protected && parent_usage > siblings_protected &&
            usage > protected) {
                u128 unclaimed = parent_effective - siblings_protected;

                unclaimed *= usage - protected;
                unclaimed /= parent_usage - siblings_protected;
                ep += (uint64_t) unclaimed;
        }
        return ep;
}

/* children_min_usage / children_low_usage of page_counter */
static void children_protected(KModel *m, KmGroup *p, uint64_t *ret_min, uint64_t *ret_low) {
        uint64_t min = 0, low = 0;

        for (KmGroup *c = p->children; c; c = c->next_sibling) {
                if (!has_memcg(m, c))
                        continue;
                min += MIN(c->mem.usage, c->mem.min);
                low += MIN(c->mem.usage, c->mem.low);
        }
        *ret_min = min;
        *ret_low = low;
}

/* mem_cgroup_calculate_protection() for every memcg below target, top-down
 * so each sees its parent's effective values. */
static void compute_protection(KModel *m, KmGroup *target) {
        target->mem.emin = target->mem.elow = 0;
        for (KmGroup *g = next_memcg(m, target, target); g; g = next_memcg(m, g, target)) {
                KmGroup *p = g->parent;
                uint64_t sib_min, sib_low;

                if (p == target) {
                        g->mem.emin = g->mem.min;
                        g->mem.elow = g->mem.low;
                        continue;
                }
                children_protected(m, p, &sib_min, &sib_low);
                g->mem.emin = effective_protection(g->mem.usage, p->mem.usage, g->mem.min,
                                                   p->mem.emin, sib_min);
                g->mem.elow = effective_protection(g->mem.usage, p->mem.usage, g->mem.low,
                                                   p->mem.elow, sib_low);
        }
}

/* Frees up to `bytes` of g's own reclaimable memory above `floor`. */
static uint64_t reclaim_from(KmGroup *g, uint64_t floor, uint64_t bytes) {
        uint64_t take;

        if (g->mem.usage <= floor)
                return 0;
        take = page_down(MIN(MIN(g->mem.file, g->mem.usage - floor), bytes));
        if (take == 0)
                return 0;
        g->mem.file -= take;
        g->mem.evicted += take;
        usage_sub(g, take);
        memcg_stat_up(g, f_pgscan, take / KM_PAGE_SIZE);
        memcg_stat_up(g, f_pgsteal, take / KM_PAGE_SIZE);
        return take;
}

/* One pass of shrink_node_memcgs(): memcgs in pre-order, each down to its
 * protection.  Below memory.min nothing is taken; below memory.low only in
 * the second pass, which counts a "low" event. */
static uint64_t reclaim_pass(KModel *m, KmGroup *target, uint64_t bytes, bool low_reclaim,
                             bool *low_skipped) {
        uint64_t got = 0;

        for (KmGroup *g = target; g && got < bytes; g = next_memcg(m, g, target)) {
                uint64_t floor = 0;

                if (g != target) {
                        if (g->mem.usage <= g->mem.emin)
                                continue;
                        if (g->mem.usage <= g->mem.elow) {
                                if (!low_reclaim) {
                                        *low_skipped = true;
                                        continue;
                                }
                                memcg_event(g, KM_MEV_LOW);
                        }
                        floor = low_reclaim ? g->mem.emin : MAX(g->mem.emin, g->mem.elow);
                }
                got += reclaim_from(g, floor, bytes - got);
        }
        return got;
}

/* try_to_free_mem_cgroup_pages(), including do_try_to_free_pages()'s
 * retry into memory.low when nothing else was left. */
static uint64_t memcg_reclaim(KModel *m, KmGroup *target, uint64_t bytes) {
        bool low_skipped = false;
        uint64_t got;

        bytes = page_down(bytes);
        compute_protection(m, target);
        got = reclaim_pass(m, target, bytes, false, &low_skipped);
        if (got < bytes && low_skipped)
                got += reclaim_pass(m, target, bytes - got, true, &low_skipped);
        return got;
}

/* psi_memstall_enter()/leave() around direct reclaim by thread t. */
static void charge_stall(KmThread *t, uint64_t reclaimed) {
        uint64_t usec = (uint64_t) ((u128) reclaimed * USEC_PER_SEC / KM_RECLAIM_BYTES_PER_SEC);

        if (!t || usec == 0)
                return;
        t->reclaim_stall_usec += usec;
        for (KmGroup *g = t->group; g; g = g->parent)
                g->mem_stall_usec += usec;
}

/* ---- km_mem_charge() ------------------------------------------------- */

static KmGroup *first_over_max(KmGroup *memcg, uint64_t bytes) {
        for (KmGroup *g = memcg; g->parent; g = g->parent)
                if (bytes > g->mem.max || g->mem.usage > g->mem.max - bytes)
                        return g;
        return NULL;
}

/* try_charge_memcg(): a charge over some level's memory.max reclaims in
 * that level's subtree; if that cannot make room it is an OOM.  The OOM
 * killer is not modelled: the charge fails instead. */
static int charge_make_room(KModel *m, KmThread *t, KmGroup *memcg, uint64_t bytes) {
        for (;;) {
                KmGroup *over = first_over_max(memcg, bytes);
                uint64_t need, got;

                if (over) {
                        memcg_event(over, KM_MEV_MAX);
                        need = over->mem.usage + bytes - over->mem.max;
                        got = memcg_reclaim(m, over, need);
                        charge_stall(t, got);
                        if (got < need) {
                                memcg_event(over, KM_MEV_OOM);
                                return -ENOMEM;
                        }
                        continue;
                }
                if (m->root->mem.usage + bytes > m->cfg.host_memory) {
                        /* Global reclaim: every memcg's protection counts. */
                        need = m->root->mem.usage + bytes - m->cfg.host_memory;
                        got = memcg_reclaim(m, m->root, need);
                        charge_stall(t, got);
                        if (got < need)
                                return -ENOMEM;
                }
                return 0;
        }
}

/* mem_cgroup_handle_over_high(): after the charge, every level above its
 * memory.high reclaims at most what was just charged (reclaim_high()). */
static void charge_over_high(KModel *m, KmThread *t, KmGroup *memcg, uint64_t bytes) {
        for (KmGroup *g = memcg; g->parent; g = g->parent) {
                if (g->mem.usage <= g->mem.high)
                        continue;
                memcg_event(g, KM_MEV_HIGH);
                charge_stall(t, memcg_reclaim(m, g, MIN(g->mem.usage - g->mem.high, bytes)));
        }
}

static int mem_uncharge(KmGroup *memcg, uint64_t bytes, bool reclaimable) {
        KmMemcg *mc = &memcg->mem;

        if (!reclaimable) {
                if (bytes > mc->anon)
                        return -EINVAL;
                mc->anon -= bytes;
                usage_sub(memcg, bytes);
                return 0;
        }
        /* Freeing page cache that reclaim already evicted only drops the
         * shadow entries. */
        if (bytes > mc->file + mc->evicted)
                return -EINVAL;
        if (bytes > mc->file) {
                mc->evicted -= bytes - mc->file;
                bytes = mc->file;
        }
        mc->file -= bytes;
        usage_sub(memcg, bytes);
        return 0;
}

int km_mem_charge(KModel *m, pid_t tid, int64_t bytes, bool reclaimable) {
        KmThread *t;
        KmGroup *memcg;
        uint64_t amount, refault;
        int r;

        if (!m)
                return -EINVAL;
        t = km_thread_lookup(m, tid);
        if (!t)
                return -ESRCH;
        if (m->version != CG_V2)
                return -EOPNOTSUPP;
        memcg = km_css_group(m, t->group, CG_CTRL_MEMORY);
        /* The kernel charges whole pages. */
        amount = bytes < 0 ? (uint64_t) -(bytes + 1) + 1 : (uint64_t) bytes;
        amount = (amount + KM_PAGE_SIZE - 1) / KM_PAGE_SIZE * KM_PAGE_SIZE;
        if (bytes < 0)
                return mem_uncharge(memcg, amount, reclaimable);
        if (amount == 0)
                return 0;
        r = charge_make_room(m, t, memcg, amount);
        if (r < 0)
                return r;
        usage_add(memcg, amount);
        if (reclaimable) {
                memcg->mem.file += amount;
                refault = MIN(amount, memcg->mem.evicted);
                memcg->mem.evicted -= refault;
                memcg_stat_up(memcg, f_refault_file, refault / KM_PAGE_SIZE);
                memcg_stat_up(memcg, f_pgmajfault, refault / KM_PAGE_SIZE);
        } else
                memcg->mem.anon += amount;
        charge_over_high(m, t, memcg, amount);
        return 0;
}

void km_mem_reparent(KModel *m, KmGroup *g) {
        KmGroup *p = g->parent;

        p->mem.anon += g->mem.anon;
        p->mem.file += g->mem.file;
        p->mem.evicted += g->mem.evicted;
        for (size_t i = 0; i < m->cfg.n_dmem_regions; i++)
                p->dmem[i].own += g->dmem[i].own;
}

/* ---- memory.* files ---------------------------------------------------- */

/* memparse(): decimal with an optional K/M/G/T/P/E suffix (hex and octal,
 * which the kernel also takes, are not accepted).  Saturates at max. */
static int memparse(const char *s, uint64_t *ret) {
        size_t n = strspn(s, "0123456789");
        unsigned shift = 0;
        uint64_t v;

        if (n == 0 || parse_u64_n(s, n, &v) < 0)
                return -EINVAL;
        if (s[n] != '\0') {
                const char *suffixes = "KMGTPE", *p = strchr(suffixes, s[n] & ~0x20);

                if (!p || s[n + 1] != '\0')
                        return -EINVAL;
                shift = 10 * (unsigned) (p - suffixes + 1);
        }
        *ret = v > (UINT64_MAX >> shift) ? UINT64_MAX : v << shift;
        return 0;
}

/* page_counter_memparse(): "max" or bytes, in whole pages. */
static int page_counter_memparse(char *data, uint64_t *ret) {
        uint64_t v;

        data = km_strip(data);
        if (strcmp(data, "max") == 0) {
                *ret = UINT64_MAX;
                return 0;
        }
        if (memparse(data, &v) < 0)
                return -EINVAL;
        *ret = v >= PAGE_COUNTER_MAX_BYTES ? UINT64_MAX : page_down(v);
        return 0;
}

static int show_bytes_or_max(KmBuf *b, uint64_t v) {
        if (v == UINT64_MAX)
                km_buf_printf(b, "max\n");
        else
                km_buf_printf(b, "%" PRIu64 "\n", v);
        return 0;
}

int km_mem_show_current(KModel *m, KmGroup *g, KmBuf *b) {
        return show_bytes_or_max(b, g->mem.usage);
}

int km_mem_show_peak(KModel *m, KmGroup *g, KmBuf *b) {
        return show_bytes_or_max(b, g->mem.peak);
}

int km_mem_show_min(KModel *m, KmGroup *g, KmBuf *b) {
        return show_bytes_or_max(b, g->mem.min);
}

int km_mem_show_low(KModel *m, KmGroup *g, KmBuf *b) {
        return show_bytes_or_max(b, g->mem.low);
}

int km_mem_show_high(KModel *m, KmGroup *g, KmBuf *b) {
        return show_bytes_or_max(b, g->mem.high);
}

int km_mem_show_max(KModel *m, KmGroup *g, KmBuf *b) {
        return show_bytes_or_max(b, g->mem.max);
}

int km_mem_show_swap_max(KModel *m, KmGroup *g, KmBuf *b) {
        return show_bytes_or_max(b, g->mem.swap_max);
}

/* Swap is not modelled separately: reclaimable memory just goes. */
int km_mem_show_swap_current(KModel *m, KmGroup *g, KmBuf *b) {
        km_buf_printf(b, "0\n");
        return 0;
}

static int write_limit(char *data, uint64_t *field) {
        uint64_t v;
        int r;

        r = page_counter_memparse(data, &v);
        if (r < 0)
                return r;
        *field = v;
        return 0;
}

int km_mem_write_min(KModel *m, KmGroup *g, char *data, bool nonblock) {
        return write_limit(data, &g->mem.min);
}

int km_mem_write_low(KModel *m, KmGroup *g, char *data, bool nonblock) {
        return write_limit(data, &g->mem.low);
}

int km_mem_write_swap_max(KModel *m, KmGroup *g, char *data, bool nonblock) {
        return write_limit(data, &g->mem.swap_max);
}

/* memory_high_write(): reclaims down to the new limit unless opened
 * O_NONBLOCK; the writer's stall is charged to nobody (vmmgr is not a
 * model task). */
int km_mem_write_high(KModel *m, KmGroup *g, char *data, bool nonblock) {
        int r;

        r = write_limit(data, &g->mem.high);
        if (r < 0 || nonblock)
                return r;
        if (g->mem.usage > g->mem.high)
                memcg_reclaim(m, g, g->mem.usage - g->mem.high);
        return 0;
}

/* memory_max_write(): like memory.high, and what reclaim cannot free is an
 * OOM (counted; the OOM killer is not modelled, so usage stays above). */
int km_mem_write_max(KModel *m, KmGroup *g, char *data, bool nonblock) {
        int r;

        r = write_limit(data, &g->mem.max);
        if (r < 0 || nonblock || g->mem.usage <= g->mem.max)
                return r;
        memcg_reclaim(m, g, g->mem.usage - g->mem.max);
        if (g->mem.usage > g->mem.max)
                memcg_event(g, KM_MEV_OOM);
        return 0;
}

/* memory_reclaim(): "N" or, where supported, "N swappiness=S".  -EAGAIN
 * when less than N could be reclaimed (what was reclaimed stays so). */
int km_mem_write_reclaim(KModel *m, KmGroup *g, char *data, bool nonblock) {
        char *save = NULL, *amount, *opt;
        uint64_t bytes, swappiness;

        amount = strtok_r(data, " \t\n", &save);
        if (!amount || memparse(amount, &bytes) < 0)
                return -EINVAL;
        while ((opt = strtok_r(NULL, " \t\n", &save))) {
                /* Swappiness is validated but does not change what the
                 * model reclaims: it has one kind of reclaimable memory. */
                if (!m->cfg.reclaim_swappiness || strncmp(opt, "swappiness=", 11) != 0 ||
                    parse_u64(opt + 11, &swappiness) < 0 || swappiness > MAX_SWAPPINESS)
                        return -EINVAL;
        }
        bytes = page_down(bytes);
        if (memcg_reclaim(m, g, bytes) < bytes)
                return -EAGAIN;
        return 0;
}

static void subtree_sums(KModel *m, KmGroup *g, uint64_t *ret_anon, uint64_t *ret_file) {
        uint64_t anon = 0, file = 0;

        for (KmGroup *c = g; c; c = next_memcg(m, c, g)) {
                anon += c->mem.anon;
                file += c->mem.file;
        }
        *ret_anon = anon;
        *ret_file = file;
}

/* memory_stat_format(): bytes first, then event counts; keys the model
 * does not produce are present and zero, in the kernel's order. */
int km_mem_show_stat(KModel *m, KmGroup *g, KmBuf *b) {
        const KmMemcg *mc = &g->mem;
        uint64_t anon, file;

        subtree_sums(m, g, &anon, &file);
        km_buf_printf(b,
                      "anon %" PRIu64 "\nfile %" PRIu64 "\nkernel 0\nkernel_stack 0\n"
                      "pagetables 0\nsec_pagetables 0\npercpu 0\nsock 0\nvmalloc 0\nshmem 0\n"
                      "file_mapped 0\nfile_dirty 0\nfile_writeback 0\nswapcached 0\n"
                      "anon_thp 0\nfile_thp 0\nshmem_thp 0\n",
                      anon, file);
        km_buf_printf(b,
                      "inactive_anon 0\nactive_anon %" PRIu64 "\ninactive_file %" PRIu64
                      "\nactive_file 0\nunevictable 0\nslab_reclaimable 0\n"
                      "slab_unreclaimable 0\nslab 0\n",
                      anon, file);
        km_buf_printf(b,
                      "workingset_refault_anon 0\nworkingset_refault_file %" PRIu64 "\n"
                      "workingset_activate_anon 0\nworkingset_activate_file 0\n"
                      "workingset_restore_anon 0\nworkingset_restore_file 0\n"
                      "workingset_nodereclaim 0\n",
                      mc->refault_file);
        km_buf_printf(b,
                      "pgscan %" PRIu64 "\npgsteal %" PRIu64 "\npgscan_kswapd 0\n"
                      "pgscan_direct %" PRIu64 "\npgsteal_kswapd 0\npgsteal_direct %" PRIu64 "\n"
                      "pgfault %" PRIu64 "\npgmajfault %" PRIu64 "\n",
                      mc->pgscan, mc->pgsteal, mc->pgscan, mc->pgsteal, mc->pgmajfault,
                      mc->pgmajfault);
        km_buf_printf(b, "pgrefill 0\npgactivate 0\npgdeactivate 0\npglazyfree 0\n"
                         "pglazyfreed 0\nthp_fault_alloc 0\nthp_collapse_alloc 0\n");
        return 0;
}

static int show_events(KmBuf *b, const uint64_t *ev) {
        km_buf_printf(b,
                      "low %" PRIu64 "\nhigh %" PRIu64 "\nmax %" PRIu64 "\noom %" PRIu64
                      "\noom_kill %" PRIu64 "\noom_group_kill 0\n",
                      ev[KM_MEV_LOW], ev[KM_MEV_HIGH], ev[KM_MEV_MAX], ev[KM_MEV_OOM],
                      ev[KM_MEV_OOM_KILL]);
        return 0;
}

int km_mem_show_events(KModel *m, KmGroup *g, KmBuf *b) {
        return show_events(b, g->mem.events);
}

int km_mem_show_events_local(KModel *m, KmGroup *g, KmBuf *b) {
        return show_events(b, g->mem.events_local);
}

/* PSI averages are not modelled (always 0.00); totals are usec. */
int km_psi_show(KmBuf *b, uint64_t some_usec, uint64_t full_usec) {
        km_buf_printf(b,
                      "some avg10=0.00 avg60=0.00 avg300=0.00 total=%" PRIu64 "\n"
                      "full avg10=0.00 avg60=0.00 avg300=0.00 total=%" PRIu64 "\n",
                      some_usec, full_usec);
        return 0;
}

int km_mem_show_pressure(KModel *m, KmGroup *g, KmBuf *b) {
        return km_psi_show(b, g->mem_stall_usec, g->mem_stall_usec);
}

/* ---- dmem ------------------------------------------------------------- */

int km_dmem_init_group(KModel *m, KmGroup *g) {
        if (m->cfg.n_dmem_regions == 0)
                return 0;
        g->dmem = calloc(m->cfg.n_dmem_regions, sizeof(KmDmemPool));
        if (!g->dmem)
                return -ENOMEM;
        km_dmem_reset_group(m, g);
        return 0;
}

/* Limits back to their defaults; charges stay with the memory. */
void km_dmem_reset_group(KModel *m, KmGroup *g) {
        for (size_t i = 0; i < m->cfg.n_dmem_regions; i++) {
                g->dmem[i].min = g->dmem[i].low = 0;
                g->dmem[i].max = g->dmem[i].high = UINT64_MAX;
        }
}

static int dmem_region_index(KModel *m, const char *name) {
        for (size_t i = 0; i < m->cfg.n_dmem_regions; i++)
                if (strcmp(m->cfg.dmem_regions[i].name, name) == 0)
                        return (int) i;
        return -EINVAL;
}

int km_dmem_show_capacity(KModel *m, KmGroup *g, KmBuf *b) {
        for (size_t i = 0; i < m->cfg.n_dmem_regions; i++)
                km_buf_printf(b, "%s %" PRIu64 "\n", m->cfg.dmem_regions[i].name,
                              m->cfg.dmem_regions[i].capacity);
        return 0;
}

typedef uint64_t *(*DmemField)(KmDmemPool *p);

static uint64_t *d_usage(KmDmemPool *p) {
        return &p->usage;
}
static uint64_t *d_min(KmDmemPool *p) {
        return &p->min;
}
static uint64_t *d_low(KmDmemPool *p) {
        return &p->low;
}
static uint64_t *d_max(KmDmemPool *p) {
        return &p->max;
}
static uint64_t *d_high(KmDmemPool *p) {
        return &p->high;
}

/* dmemcg_limit_show(): one "<region> <value>" line per region. */
static int dmem_show(KModel *m, KmGroup *g, KmBuf *b, DmemField field) {
        for (size_t i = 0; i < m->cfg.n_dmem_regions; i++) {
                uint64_t v = *field(&g->dmem[i]);

                if (v == UINT64_MAX)
                        km_buf_printf(b, "%s max\n", m->cfg.dmem_regions[i].name);
                else
                        km_buf_printf(b, "%s %" PRIu64 "\n", m->cfg.dmem_regions[i].name, v);
        }
        return 0;
}

int km_dmem_show_current(KModel *m, KmGroup *g, KmBuf *b) {
        return dmem_show(m, g, b, d_usage);
}
int km_dmem_show_min(KModel *m, KmGroup *g, KmBuf *b) {
        return dmem_show(m, g, b, d_min);
}
int km_dmem_show_low(KModel *m, KmGroup *g, KmBuf *b) {
        return dmem_show(m, g, b, d_low);
}
int km_dmem_show_max(KModel *m, KmGroup *g, KmBuf *b) {
        return dmem_show(m, g, b, d_max);
}
int km_dmem_show_high(KModel *m, KmGroup *g, KmBuf *b) {
        return dmem_show(m, g, b, d_high);
}

/* dmemcg_limit_write(): lines of "<region> <bytes|max>", each applied as
 * it is parsed.  dmem.max goes through page_counter_set_max(), whose
 * refusal of a max below usage dmem ignores: the write succeeds and the
 * old limit stays. */
static int dmem_write(KModel *m, KmGroup *g, char *data, DmemField field) {
        char *save_line = NULL;

        for (char *line = strtok_r(data, "\n", &save_line); line;
             line = strtok_r(NULL, "\n", &save_line)) {
                char *save = NULL, *name, *value, *extra;
                uint64_t v;
                int i;

                name = strtok_r(line, " \t", &save);
                if (!name)
                        continue;
                value = strtok_r(NULL, " \t", &save);
                extra = strtok_r(NULL, " \t", &save);
                i = dmem_region_index(m, name);
                if (i < 0 || !value || extra)
                        return -EINVAL;
                if (strcmp(value, "max") == 0)
                        v = UINT64_MAX;
                else if (memparse(value, &v) < 0)
                        return -EINVAL;
                if (field == d_max && v < g->dmem[i].usage)
                        continue;
                *field(&g->dmem[i]) = v;
        }
        return 0;
}

int km_dmem_write_min(KModel *m, KmGroup *g, char *data, bool nonblock) {
        return dmem_write(m, g, data, d_min);
}
int km_dmem_write_low(KModel *m, KmGroup *g, char *data, bool nonblock) {
        return dmem_write(m, g, data, d_low);
}
int km_dmem_write_max(KModel *m, KmGroup *g, char *data, bool nonblock) {
        return dmem_write(m, g, data, d_max);
}
int km_dmem_write_high(KModel *m, KmGroup *g, char *data, bool nonblock) {
        return dmem_write(m, g, data, d_high);
}

/* ---- km_dmem_charge() and eviction ------------------------------------ */

typedef enum DmemClass {
        DMEM_ABOVE_HIGH, /* only with dmem.high */
        DMEM_ABOVE_LOW,
        DMEM_ABOVE_MIN,
        _DMEM_CLASS_MAX,
} DmemClass;

/* How far eviction may take a pool in a class. */
static uint64_t dmem_floor(const KmDmemPool *p, DmemClass c) {
        switch (c) {
        case DMEM_ABOVE_HIGH:
                return p->high;
        case DMEM_ABOVE_LOW:
                return MAX(p->low, p->min);
        default:
                return p->min;
        }
}

static uint64_t dmem_evictable(const KmDmemPool *p, DmemClass c) {
        uint64_t floor = dmem_floor(p, c);

        return p->usage > floor ? MIN(p->own, p->usage - floor) : 0;
}

typedef struct DmemVictim {
        KmGroup *g;
        uint64_t excess;
        size_t order; /* pre-order position: ties go to the earlier group */
} DmemVictim;

static int cmp_victim(const void *a, const void *b) {
        const DmemVictim *x = a, *y = b;

        if (x->excess != y->excess)
                return x->excess > y->excess ? -1 : 1;
        return x->order < y->order ? -1 : x->order > y->order;
}

static void dmem_usage_add(KmGroup *g, size_t i, uint64_t bytes) {
        for (; g; g = g->parent)
                g->dmem[i].usage += bytes;
}

static void dmem_usage_sub(KmGroup *g, size_t i, uint64_t bytes) {
        for (; g; g = g->parent)
                g->dmem[i].usage -= MIN(g->dmem[i].usage, bytes);
}

/* Evicts from every group but `self` in one class, largest excess first. */
static uint64_t dmem_evict_class(KModel *m, size_t i, KmGroup *self, DmemClass c,
                                 uint64_t need) {
        _cleanup_free_ DmemVictim *v = calloc(m->n_groups, sizeof(DmemVictim));
        size_t n = 0, order = 0;
        uint64_t got = 0;

        if (!v)
                return 0;
        for (KmGroup *g = m->root; g; g = km_group_next_pre(g, m->root), order++) {
                uint64_t excess;

                if (g == self)
                        continue;
                excess = dmem_evictable(&g->dmem[i], c);
                if (excess > 0)
                        v[n++] = (DmemVictim) { .g = g, .excess = excess, .order = order };
        }
        qsort(v, n, sizeof(DmemVictim), cmp_victim);
        for (size_t k = 0; k < n && got < need; k++) {
                /* Recomputed: evicting a descendant lowers an ancestor. */
                uint64_t take = MIN(dmem_evictable(&v[k].g->dmem[i], c), need - got);

                v[k].g->dmem[i].own -= take;
                dmem_usage_sub(v[k].g, i, take);
                got += take;
        }
        return got;
}

static uint64_t dmem_total_evictable(KModel *m, size_t i, KmGroup *self) {
        uint64_t sum = 0;

        for (KmGroup *g = m->root; g; g = km_group_next_pre(g, m->root))
                if (g != self)
                        sum += dmem_evictable(&g->dmem[i], DMEM_ABOVE_MIN);
        return sum;
}

/* Makes `need` bytes of room in region i: groups above dmem.high first
 * (where it exists), then above dmem.low, then above dmem.min; never
 * below dmem.min.  Nothing is evicted when it could not be enough. */
static int dmem_evict(KModel *m, size_t i, KmGroup *self, uint64_t need) {
        uint64_t got = 0;

        if (dmem_total_evictable(m, i, self) < need)
                return -ENOSPC;
        for (DmemClass c = m->cfg.dmem_high ? DMEM_ABOVE_HIGH : DMEM_ABOVE_LOW;
             c < _DMEM_CLASS_MAX && got < need; c++)
                got += dmem_evict_class(m, i, self, c, need - got);
        /* Only an allocation failure of the victim list gets here. */
        return got < need ? -ENOMEM : 0;
}

int km_dmem_charge(KModel *m, pid_t tid, const char *region, int64_t bytes) {
        uint64_t amount, used, capacity;
        KmThread *t;
        KmGroup *g;
        int i, r;

        if (!m || !region)
                return -EINVAL;
        t = km_thread_lookup(m, tid);
        if (!t)
                return -ESRCH;
        i = dmem_region_index(m, region);
        if (i < 0)
                return i;
        g = km_css_group(m, t->group, CG_CTRL_DMEM);
        if (bytes < 0) {
                amount = (uint64_t) -(bytes + 1) + 1;
                if (amount > g->dmem[i].own)
                        return -EINVAL;
                g->dmem[i].own -= amount;
                dmem_usage_sub(g, (size_t) i, amount);
                return 0;
        }
        amount = (uint64_t) bytes;
        /* dmem_cgroup_try_charge(): over any level's dmem.max the driver
         * gets -EAGAIN (and would evict within that pool itself). */
        for (KmGroup *p = g; p->parent; p = p->parent)
                if (amount > p->dmem[i].max || p->dmem[i].usage > p->dmem[i].max - amount)
                        return -EAGAIN;
        used = m->root->dmem[i].usage;
        capacity = m->cfg.dmem_regions[i].capacity;
        if (amount > capacity)
                return -ENOSPC;
        if (used > capacity - amount) {
                r = dmem_evict(m, (size_t) i, g, used + amount - capacity);
                if (r < 0)
                        return r;
        }
        g->dmem[i].own += amount;
        dmem_usage_add(g, (size_t) i, amount);
        return 0;
}
