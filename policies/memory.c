/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * policies/memory.c - the memory policies (memory.h says what and why).
 *
 * Arithmetic: sizes stay below MEMPOL_BYTES_LIMIT where they come from
 * configuration or RAM, but readings (usage, counters) are whatever the
 * kernel reports, so every sum saturates and every product goes through
 * 128 bits.  Amounts the kernel applies are whole pages.
 */
#include "policies/memory.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "common/macros.h"
#include "common/parse.h"

typedef unsigned __int128 u128;

#define PAGE MEMPOL_PAGE_SIZE
/* An interval longer than this counts as this long: a daemon that slept
 * for an hour should not act on an hour's worth of rate at once, and it
 * keeps usage x ppm x interval inside 128 bits. */
#define INTERVAL_CAP_USEC (UINT64_C(600) * USEC_PER_SEC)
#define KERNEL_MIN_QUOTA_USEC UINT64_C(1000)
#define KERNEL_MIN_PERIOD_USEC UINT64_C(1000)
#define KERNEL_MAX_PERIOD_USEC UINT64_C(1000000)
#define MAX_SWAPPINESS 200
/* The longest proactive pressure window taken (an hour). */
#define MAX_WINDOW_USEC (UINT64_C(3600) * USEC_PER_SEC)

/* ---- arithmetic ---------------------------------------------------------- */

static uint64_t sat_add(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sat_sub(uint64_t a, uint64_t b) {
        return a > b ? a - b : 0;
}

/* a * b / c in 128 bits, saturating at UINT64_MAX; c > 0. */
static uint64_t mul_div(uint64_t a, uint64_t b, uint64_t c) {
        u128 v = (u128) a * b / c;

        return v > UINT64_MAX ? UINT64_MAX : (uint64_t) v;
}

static uint64_t mul_ppm(uint64_t v, uint64_t ppm) {
        return mul_div(v, ppm, MEMPOL_PPM);
}

static uint64_t page_down(uint64_t v) {
        return v / PAGE * PAGE;
}

static uint64_t page_up(uint64_t v) {
        return v > UINT64_MAX - (PAGE - 1) ? page_down(v) : (v + PAGE - 1) / PAGE * PAGE;
}

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi) {
        return v < lo ? lo : v > hi ? hi : v;
}

/* ---- tunables --------------------------------------------------------------- */

void mempol_default(MemPolicy *p) {
        *p = (MemPolicy) {
                .limits = {
                        .overhead_bytes = 256 * MEMPOL_MIB,
                        .overhead_ppm = 20000,
                        .swap_max_bytes = MEMPOL_MAX,
                        .min_ppm = 100000,
                        .low_floor_ppm = 250000,
                },
                .protect = {
                        .pressure_ppm = 10000,
                        .refault_min_bytes_per_sec = MEMPOL_MIB,
                        .refault_ppm_per_sec = 100,
                        .raise_ppm = 1000000,
                        .quiet_usec = 30 * USEC_PER_SEC,
                        .decay_ppm_per_sec = 1000,
                },
                .reclaim = {
                        .high_gap_bytes = 64 * MEMPOL_MIB,
                        .high_gap_ppm = 20000,
                        .low_gap_bytes = 128 * MEMPOL_MIB,
                        .low_gap_ppm = 50000,
                        .request_max_bytes = MEMPOL_GIB,
                        .chunk_bytes = 16 * MEMPOL_MIB,
                        .thread_bytes_per_sec = 512 * MEMPOL_MIB,
                        .drain_usec = USEC_PER_SEC,
                },
                .proactive = {
                        .enabled = true,
                        .step_ppm_per_sec = 10000,
                        .pressure_target_ppm = 1000,
                        .window_usec = 6 * USEC_PER_SEC,
                        .backoff_usec = 10 * USEC_PER_SEC,
                        .step_max_bytes = 64 * MEMPOL_MIB,
                        .swappiness = 100,
                },
                .throttle = {
                        .period_usec = 100000,
                        .emulator_ppm = 200000,
                        .io_ppm = 200000,
                },
                .balloon = { .min_guest_ppm = 500000 },
                .host = {
                        .ceiling_ppm = 950000,
                        .start_gap_ppm = 10000,
                        .target_gap_ppm = 20000,
                },
                .dmem = {
                        .hysteresis_bytes = 64 * MEMPOL_MIB,
                        .hysteresis_ppm = 50000,
                },
        };
}

static bool size_ok(uint64_t v) {
        return v <= MEMPOL_BYTES_LIMIT;
}

static bool size_or_max_ok(uint64_t v) {
        return v == MEMPOL_MAX || v <= MEMPOL_BYTES_LIMIT;
}

/* The first field at fault (NULL: none) and its error: -ERANGE for a size
 * past MEMPOL_BYTES_LIMIT, -EINVAL for anything else.  Names are
 * mempol_set_key() keys where one sets the field. */
#define CHECK(cond, name, code)                 \
        do {                                    \
                if (!(cond)) {                  \
                        *ret_code = (code);     \
                        return (name);          \
                }                               \
        } while (0)

static const char *first_bad_field(const MemPolicy *p, int *ret_code) {
        const MemPolLimitParams *l = &p->limits;
        const MemPolProtectParams *pr = &p->protect;
        const MemPolReclaimParams *r = &p->reclaim;
        const MemPolProactiveParams *pa = &p->proactive;
        const MemPolThrottleParams *t = &p->throttle;
        const MemPolHostParams *h = &p->host;

        CHECK(size_ok(l->overhead_bytes), "overhead", -ERANGE);
        CHECK(l->overhead_ppm <= MEMPOL_PPM, "overhead_pct", -EINVAL);
        CHECK(size_or_max_ok(l->swap_max_bytes), "swap_max", -ERANGE);
        CHECK(size_or_max_ok(l->mem_swap_max_bytes), "mem_swap_max", -ERANGE);
        CHECK(l->mem_swap_max_ppm <= 100 * MEMPOL_PPM, "mem_swap_max_pct", -EINVAL);
        CHECK(l->min_ppm <= MEMPOL_PPM, "min_pct", -EINVAL);
        /* A low floor below min would protect nothing more. */
        CHECK(l->low_floor_ppm <= MEMPOL_PPM && l->low_floor_ppm >= l->min_ppm, "low_floor_pct", -EINVAL);
        CHECK(pr->pressure_ppm <= MEMPOL_PPM, "protect_pressure_pct", -EINVAL);
        CHECK(pr->refault_ppm_per_sec <= MEMPOL_PPM && pr->raise_ppm <= MEMPOL_PPM &&
                      pr->decay_ppm_per_sec <= MEMPOL_PPM,
              "protect", -EINVAL);
        CHECK(size_ok(r->high_gap_bytes) && size_ok(r->low_gap_bytes), "reclaim_gap", -ERANGE);
        /* The low watermark lies below the high one. */
        CHECK(r->high_gap_ppm <= MEMPOL_PPM && r->low_gap_ppm <= MEMPOL_PPM &&
                      r->low_gap_bytes >= r->high_gap_bytes && r->low_gap_ppm >= r->high_gap_ppm,
              "reclaim_gap", -EINVAL);
        CHECK(size_ok(r->chunk_bytes), "reclaim_chunk", -ERANGE);
        CHECK(r->chunk_bytes >= PAGE, "reclaim_chunk", -EINVAL);
        CHECK(size_ok(r->request_max_bytes), "reclaim_request_max", -ERANGE);
        CHECK(r->request_max_bytes >= r->chunk_bytes, "reclaim_request_max", -EINVAL);
        CHECK(r->thread_bytes_per_sec > 0, "reclaim_thread_rate", -EINVAL);
        CHECK(r->drain_usec > 0, "reclaim_drain", -EINVAL);
        CHECK(pa->step_ppm_per_sec <= MEMPOL_PPM, "proactive_step_pct", -EINVAL);
        CHECK(pa->pressure_target_ppm > 0 && pa->pressure_target_ppm <= MEMPOL_PPM, "proactive_pressure_pct",
              -EINVAL);
        CHECK(pa->window_usec <= MAX_WINDOW_USEC, "proactive_window_sec", -EINVAL);
        CHECK(size_ok(pa->step_max_bytes), "proactive_step_max", -ERANGE);
        CHECK(pa->step_max_bytes > 0, "proactive_step_max", -EINVAL);
        CHECK(pa->swappiness >= -1 && pa->swappiness <= MAX_SWAPPINESS, "proactive_swappiness", -EINVAL);
        CHECK(t->period_usec >= KERNEL_MIN_PERIOD_USEC && t->period_usec <= KERNEL_MAX_PERIOD_USEC,
              "throttle_period", -EINVAL);
        CHECK(t->emulator_ppm > 0 && t->emulator_ppm <= MEMPOL_PPM, "throttle_emulator_pct", -EINVAL);
        CHECK(t->io_ppm > 0 && t->io_ppm <= MEMPOL_PPM, "throttle_io_pct", -EINVAL);
        CHECK(p->balloon.min_guest_ppm <= MEMPOL_PPM, "balloon_min_guest_pct", -EINVAL);
        CHECK(h->ceiling_ppm > 0 && h->ceiling_ppm <= MEMPOL_PPM, "host_ceiling_pct", -EINVAL);
        /* Act before the point reclaim goes down to: the start gap is the smaller. */
        CHECK(h->start_gap_ppm <= h->target_gap_ppm && h->target_gap_ppm < h->ceiling_ppm, "host_gap", -EINVAL);
        CHECK(size_ok(p->dmem.hysteresis_bytes), "dmem_hysteresis", -ERANGE);
        CHECK(p->dmem.hysteresis_ppm <= MEMPOL_PPM, "dmem_hysteresis", -EINVAL);
        *ret_code = 0;
        return NULL;
}

#undef CHECK

int mempol_validate(const MemPolicy *p, const char **ret_field) {
        const char *field = "policy";
        int r = -EINVAL;

        if (p)
                field = first_bad_field(p, &r);
        if (ret_field)
                *ret_field = field;
        return r;
}

/* ---- config keys -------------------------------------------------------- */

/* A size (common/parse.h: "4096", "256M", "1G", "2T"), or "max" where
 * allowed; at most MEMPOL_BYTES_LIMIT. */
static int parse_size_or_max(const char *s, bool max_ok, uint64_t *ret) {
        uint64_t v;
        int r;

        if (strcmp(s, "max") == 0) {
                if (!max_ok)
                        return -EINVAL;
                *ret = MEMPOL_MAX;
                return 0;
        }
        r = parse_size(s, &v);
        if (r < 0)
                return r;
        if (v > MEMPOL_BYTES_LIMIT)
                return -ERANGE;
        *ret = v;
        return 0;
}

/* "0.02" (a fraction of 1, six decimals) or "2%", "2.5%", "150%" (four
 * decimals), as ppm up to max_ppm. */
static int parse_share(const char *s, uint32_t max_ppm, uint32_t *ret) {
        size_t len = strlen(s);
        uint64_t whole, frac = 0, v;
        const char *dot;
        size_t int_len, digits = 0;
        uint32_t ppm;
        int r;

        if (len == 0)
                return -EINVAL;
        if (s[len - 1] != '%') {
                r = parse_fraction_ppm(s, &ppm);
                if (r < 0)
                        return r;
                if (ppm > max_ppm)
                        return -ERANGE;
                *ret = ppm;
                return 0;
        }
        len--;
        dot = memchr(s, '.', len);
        int_len = dot ? (size_t) (dot - s) : len;
        if (int_len == 0 || parse_u64_n(s, int_len, &whole) < 0)
                return -EINVAL;
        if (dot) {
                digits = len - int_len - 1;
                if (digits == 0 || digits > 4 || parse_u64_n(dot + 1, digits, &frac) < 0)
                        return -EINVAL;
                for (size_t i = digits; i < 4; i++)
                        frac *= 10;
        }
        if (whole > max_ppm / 10000)
                return -ERANGE;
        v = whole * 10000 + frac; /* 1 % = 10000 ppm */
        if (v > max_ppm)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

static int parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "on", "yes", "true", "1" }, *const no[] = { "off", "no", "false", "0" };

        for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
                if (strcmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

typedef enum KeyKind {
        KEY_SIZE,        /* uint64_t bytes */
        KEY_SIZE_OR_MAX, /* uint64_t bytes or MEMPOL_MAX */
        KEY_SHARE,       /* uint32_t ppm, at most `max` */
        KEY_BOOL,
        KEY_SECONDS,     /* uint64_t usec from whole seconds */
        KEY_INT,         /* int in [-1, max] */
        KEY_UINT,        /* unsigned in [0, max] */
} KeyKind;

static const struct {
        const char *key;
        KeyKind kind;
        size_t offset;
        uint64_t max;
} keys[] = {
        { "overhead", KEY_SIZE, offsetof(MemPolicy, limits.overhead_bytes), 0 },
        { "overhead_pct", KEY_SHARE, offsetof(MemPolicy, limits.overhead_ppm), MEMPOL_PPM },
        { "swap_max", KEY_SIZE_OR_MAX, offsetof(MemPolicy, limits.swap_max_bytes), 0 },
        { "mem_swap_max", KEY_SIZE_OR_MAX, offsetof(MemPolicy, limits.mem_swap_max_bytes), 0 },
        { "mem_swap_max_pct", KEY_SHARE, offsetof(MemPolicy, limits.mem_swap_max_ppm), 100 * MEMPOL_PPM },
        { "min_pct", KEY_SHARE, offsetof(MemPolicy, limits.min_ppm), MEMPOL_PPM },
        { "low_floor_pct", KEY_SHARE, offsetof(MemPolicy, limits.low_floor_ppm), MEMPOL_PPM },
        { "protect_pressure_pct", KEY_SHARE, offsetof(MemPolicy, protect.pressure_ppm), MEMPOL_PPM },
        { "reclaim_chunk", KEY_SIZE, offsetof(MemPolicy, reclaim.chunk_bytes), 0 },
        { "reclaim_request_max", KEY_SIZE, offsetof(MemPolicy, reclaim.request_max_bytes), 0 },
        { "reclaim_thread_rate", KEY_SIZE, offsetof(MemPolicy, reclaim.thread_bytes_per_sec), 0 },
        { "reclaim_max_threads", KEY_UINT, offsetof(MemPolicy, reclaim.max_threads), 65536 },
        { "proactive", KEY_BOOL, offsetof(MemPolicy, proactive.enabled), 0 },
        { "proactive_step_pct", KEY_SHARE, offsetof(MemPolicy, proactive.step_ppm_per_sec), MEMPOL_PPM },
        { "proactive_pressure_pct", KEY_SHARE, offsetof(MemPolicy, proactive.pressure_target_ppm), MEMPOL_PPM },
        { "proactive_backoff_sec", KEY_SECONDS, offsetof(MemPolicy, proactive.backoff_usec), 0 },
        { "proactive_window_sec", KEY_SECONDS, offsetof(MemPolicy, proactive.window_usec), 0 },
        { "proactive_swappiness", KEY_INT, offsetof(MemPolicy, proactive.swappiness), MAX_SWAPPINESS },
        { "throttle_emulator_pct", KEY_SHARE, offsetof(MemPolicy, throttle.emulator_ppm), MEMPOL_PPM },
        { "throttle_io_pct", KEY_SHARE, offsetof(MemPolicy, throttle.io_ppm), MEMPOL_PPM },
        { "balloon_min_guest_pct", KEY_SHARE, offsetof(MemPolicy, balloon.min_guest_ppm), MEMPOL_PPM },
        { "host_ceiling_pct", KEY_SHARE, offsetof(MemPolicy, host.ceiling_ppm), MEMPOL_PPM },
};

static int set_value(MemPolicy *p, size_t k, const char *value) {
        void *dst = (char *) p + keys[k].offset;
        uint64_t u;
        uint32_t ppm;
        bool b;
        int i, r;

        switch (keys[k].kind) {
        case KEY_SIZE:
        case KEY_SIZE_OR_MAX:
                r = parse_size_or_max(value, keys[k].kind == KEY_SIZE_OR_MAX, &u);
                if (r == 0)
                        memcpy(dst, &u, sizeof(u));
                return r;
        case KEY_SHARE:
                r = parse_share(value, (uint32_t) keys[k].max, &ppm);
                if (r == 0)
                        memcpy(dst, &ppm, sizeof(ppm));
                return r;
        case KEY_BOOL:
                r = parse_bool(value, &b);
                if (r == 0)
                        memcpy(dst, &b, sizeof(b));
                return r;
        case KEY_SECONDS:
                r = parse_u64(value, &u);
                if (r < 0)
                        return r;
                if (u > UINT64_MAX / USEC_PER_SEC)
                        return -ERANGE;
                u *= USEC_PER_SEC;
                memcpy(dst, &u, sizeof(u));
                return 0;
        case KEY_INT:
        case KEY_UINT:
                r = parse_int_range(value, keys[k].kind == KEY_INT ? -1 : 0, (int) keys[k].max, &i);
                if (r < 0)
                        return r;
                if (keys[k].kind == KEY_INT)
                        memcpy(dst, &i, sizeof(i));
                else {
                        unsigned v = (unsigned) i;
                        memcpy(dst, &v, sizeof(v));
                }
                return 0;
        }
        return -EINVAL;
}

int mempol_set_key(MemPolicy *p, const char *key, const char *value, const char **ret_key) {
        int r;

        if (ret_key)
                *ret_key = key;
        if (!p || !key || !value)
                return -EINVAL;
        for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
                if (strcmp(keys[k].key, key) != 0)
                        continue;
                r = set_value(p, k, value);
                if (r == 0 && ret_key)
                        *ret_key = NULL;
                return r;
        }
        return -ENOKEY;
}

/* ---- per-VM limits ------------------------------------------------------- */

/* The combined memory+swap ceiling for this RAM, or MEMPOL_MAX. */
static uint64_t combined_ceiling(const MemPolLimitParams *l, uint64_t ram) {
        uint64_t c = MEMPOL_MAX;

        if (l->mem_swap_max_bytes != 0 && l->mem_swap_max_bytes != MEMPOL_MAX)
                c = l->mem_swap_max_bytes;
        if (l->mem_swap_max_ppm != 0)
                c = MIN(c, mul_ppm(ram, l->mem_swap_max_ppm));
        return c;
}

/* Gaps below max: the larger of bytes and ppm of max, capped at a share of
 * the room between the floor and max so a VM with little room (small, or
 * passthrough with only its overhead above the floor) still has both
 * watermarks above its floor and apart. */
static void watermarks(const MemPolReclaimParams *r, MemPolVmLimits *l) {
        uint64_t room = l->max - l->floor;
        uint64_t hgap = MIN(MAX(r->high_gap_bytes, mul_ppm(l->max, r->high_gap_ppm)), room / 4);
        uint64_t lgap = MIN(MAX(r->low_gap_bytes, mul_ppm(l->max, r->low_gap_ppm)), room / 2);

        lgap = MAX(lgap, hgap);
        l->wmark_low = MAX(page_down(l->max - lgap), l->low_floor);
        l->wmark_high = MAX(page_down(l->max - hgap), l->wmark_low);
}

int mempol_vm_limits(const MemPolicy *p, const MemPolVmSpec *vm, MemPolVmLimits *ret) {
        const MemPolLimitParams *lp;
        MemPolVmLimits l = { 0 };
        uint64_t combined;

        if (!p || !vm || !ret || mempol_validate(p, NULL) < 0)
                return -EINVAL;
        lp = &p->limits;
        if (vm->ram_bytes == 0)
                return -EINVAL;
        if (vm->ram_bytes > MEMPOL_BYTES_LIMIT)
                return -ERANGE;
        /* Every term is below 2^50: the sums below cannot wrap. */
        l.ram = page_up(vm->ram_bytes);
        l.overhead = page_up(lp->overhead_bytes + mul_ppm(l.ram, lp->overhead_ppm));
        l.max = l.ram + l.overhead;
        l.high = MEMPOL_MAX; /* never: over high every thread sleeps, vCPUs too */
        combined = combined_ceiling(lp, l.ram);
        if (combined < l.max)
                return -ERANGE; /* the VM does not fit its memory+swap ceiling */
        l.swap_max = lp->swap_max_bytes == MEMPOL_MAX ? MEMPOL_MAX : page_down(lp->swap_max_bytes);
        if (combined != MEMPOL_MAX)
                l.swap_max = MIN(l.swap_max, page_down(combined - l.max));
        if (vm->passthrough) {
                /* Pinned RAM cannot be reclaimed; only the overhead can. */
                l.min = l.low_floor = l.ram;
        } else {
                l.min = page_down(mul_ppm(l.ram, lp->min_ppm));
                l.low_floor = MAX(l.min, page_down(mul_ppm(l.ram, lp->low_floor_ppm)));
        }
        l.floor = l.min;
        l.low = l.low_floor;
        watermarks(&p->reclaim, &l);
        l.min_guest = MIN(page_down(mul_ppm(l.ram, p->balloon.min_guest_ppm)), l.ram);
        l.passthrough = vm->passthrough;
        l.balloon = vm->balloon;
        l.priority = vm->priority;
        *ret = l;
        return 0;
}

/* ---- samples ------------------------------------------------------------- */

static uint64_t counter_delta(uint64_t before, uint64_t after) {
        return after >= before ? after - before : 0; /* reset: group recreated */
}

static uint64_t pages_to_bytes(uint64_t pages) {
        return pages > UINT64_MAX / PAGE ? UINT64_MAX : pages * PAGE;
}

int mempol_sample(const MemPolCounters *prev, const MemPolCounters *now, MemPolSample *ret) {
        uint64_t dt, stall, refaults, allocated;
        uint32_t from_total, from_avg;

        if (!prev || !now || !ret || now->at_usec <= prev->at_usec)
                return -EINVAL;
        dt = now->at_usec - prev->at_usec;
        refaults = sat_add(counter_delta(prev->refault_anon, now->refault_anon),
                           counter_delta(prev->refault_file, now->refault_file));
        stall = counter_delta(prev->psi_some_total_usec, now->psi_some_total_usec);
        from_total = (uint32_t) MIN(mul_div(stall, MEMPOL_PPM, dt), MEMPOL_PPM);
        from_avg = (uint32_t) MIN((uint64_t) now->psi_some_avg10 * 100, MEMPOL_PPM); /* 0.01 % = 100 ppm */
        *ret = (MemPolSample) {
                .interval_usec = dt,
                .current = now->current,
                .refault_bytes = pages_to_bytes(refaults),
                .reclaimed_bytes = pages_to_bytes(counter_delta(prev->pgsteal, now->pgsteal)),
                /* Either view of pressure counts: the total is exact for
                 * the interval, avg10 catches a stall just before it. */
                .pressure_ppm = MAX(from_total, from_avg),
        };
        allocated = sat_sub(sat_add(now->current, ret->reclaimed_bytes), prev->current);
        ret->growth_bytes_per_sec = mul_div(allocated, USEC_PER_SEC, dt);
        return 0;
}

/* ---- per-VM decisions -------------------------------------------------- */

void mempol_vm_state_init(MemPolVmState *s, const MemPolVmLimits *l) {
        *s = (MemPolVmState) { .low = l->low };
}

static uint64_t refault_rate(const MemPolSample *smp) {
        return smp->interval_usec ? mul_div(smp->refault_bytes, USEC_PER_SEC, smp->interval_usec) : 0;
}

bool mempol_working_set_cut(const MemPolicy *p, const MemPolSample *smp) {
        const MemPolProtectParams *pr = &p->protect;
        uint64_t threshold = MAX(pr->refault_min_bytes_per_sec, mul_ppm(smp->current, pr->refault_ppm_per_sec));

        return smp->pressure_ppm > pr->pressure_ppm || refault_rate(smp) > threshold;
}

static uint64_t interval_capped(const MemPolSample *smp) {
        return MIN(smp->interval_usec, INTERVAL_CAP_USEC);
}

/* On a cut, low rises by raise_ppm of what refaulted in the interval (the
 * part of the working set that reclaim had cut and that came back), never
 * above usage.  A cut with no refault (a stall in reclaim or compaction)
 * raises nothing: memory.low cannot keep such a stall away. */
static uint64_t protect_raise(const MemPolicy *p, const MemPolVmLimits *l, uint64_t low, const MemPolSample *smp) {
        uint64_t target = page_down(MIN(smp->current, l->max)), step;

        if (target <= low)
                return low;
        step = page_up(mul_ppm(smp->refault_bytes, p->protect.raise_ppm));
        return MIN(sat_add(low, step), target);
}

/* When quiet long enough, low loses decay_ppm_per_sec of (low - floor)
 * per second of the interval (at least a page). */
static uint64_t protect_decay(const MemPolicy *p, const MemPolVmLimits *l, uint64_t low, uint64_t interval) {
        uint64_t share, dec;

        if (low <= l->low_floor)
                return l->low_floor;
        /* decay ppm/s x usec fits 128 bits; at most all of it. */
        share = MIN(mul_div(p->protect.decay_ppm_per_sec, interval, USEC_PER_SEC), MEMPOL_PPM);
        dec = mul_ppm(low - l->low_floor, share);
        if (dec == 0 && share == 0)
                return low;
        dec = MAX(page_up(dec), PAGE);
        return low - MIN(dec, low - l->low_floor);
}

uint64_t mempol_protect_update(const MemPolicy *p, const MemPolVmLimits *l, MemPolVmState *s,
                               const MemPolSample *smp) {
        uint64_t low = clamp_u64(s->low, l->low_floor, l->max);

        if (l->passthrough) {
                /* All of RAM is protected by memory.min already. */
                s->low = l->low_floor;
                return s->low;
        }
        if (mempol_working_set_cut(p, smp)) {
                s->quiet_usec = 0;
                low = protect_raise(p, l, low, smp);
        } else {
                uint64_t before = s->quiet_usec;

                s->quiet_usec = sat_add(s->quiet_usec, smp->interval_usec);
                /* Only the part of the interval past quiet_usec decays. */
                if (s->quiet_usec > p->protect.quiet_usec)
                        low = protect_decay(p, l, low,
                                            MIN(s->quiet_usec - MAX(before, p->protect.quiet_usec),
                                                INTERVAL_CAP_USEC));
        }
        s->low = page_down(clamp_u64(low, l->low_floor, l->max));
        return s->low;
}

uint64_t mempol_background(const MemPolicy *p, const MemPolVmLimits *l, MemPolVmState *s, uint64_t current) {
        if (!s->reclaiming && current > l->wmark_high)
                s->reclaiming = true;
        else if (s->reclaiming && current <= l->wmark_low)
                s->reclaiming = false;
        if (!s->reclaiming)
                return 0;
        /* wmark_low >= floor by construction; page_up so one request that
         * the kernel fully honours ends at or below the watermark. */
        return MIN(page_up(current - MAX(l->wmark_low, l->floor)), page_down(p->reclaim.request_max_bytes));
}

/* The interval's pressure into the exponential average over window_usec
 * (an interval as long as the window or longer replaces it). */
static uint32_t pressure_average(const MemPolProactiveParams *pa, MemPolVmState *s, const MemPolSample *smp) {
        uint64_t dt = MIN(smp->interval_usec, pa->window_usec);
        int64_t diff = (int64_t) smp->pressure_ppm - (int64_t) s->pressure_avg_ppm;

        if (pa->window_usec == 0)
                s->pressure_avg_ppm = smp->pressure_ppm;
        else /* |diff| <= 10^6, dt <= MAX_WINDOW_USEC: no overflow */
                s->pressure_avg_ppm = (uint32_t) ((int64_t) s->pressure_avg_ppm +
                                                  diff * (int64_t) dt / (int64_t) pa->window_usec);
        return s->pressure_avg_ppm;
}

uint64_t mempol_proactive(const MemPolicy *p, const MemPolVmLimits *l, MemPolVmState *s,
                          const MemPolSample *smp) {
        const MemPolProactiveParams *pa = &p->proactive;
        uint64_t rate = refault_rate(smp), floor, step;
        bool rising = rate > s->refault_bytes_per_sec && rate > p->protect.refault_min_bytes_per_sec;
        uint32_t pressure = pressure_average(pa, s, smp);
        u128 wide;

        s->refault_bytes_per_sec = rate;
        if (!pa->enabled)
                return 0;
        if (pressure >= pa->pressure_target_ppm || rising) {
                s->backoff_usec = pa->backoff_usec;
                return 0;
        }
        if (s->backoff_usec > 0) {
                s->backoff_usec = sat_sub(s->backoff_usec, smp->interval_usec);
                return 0;
        }
        floor = MAX(l->floor, s->low);
        if (smp->current <= floor)
                return 0;
        /* usage x ppm/s x interval (< 2^64 x 2^20 x 2^30), then scaled by
         * how far pressure is below its target. */
        wide = (u128) smp->current * pa->step_ppm_per_sec * interval_capped(smp) / MEMPOL_PPM / USEC_PER_SEC;
        wide = wide * (pa->pressure_target_ppm - pressure) / pa->pressure_target_ppm;
        step = wide > UINT64_MAX ? UINT64_MAX : (uint64_t) wide;
        step = MIN(MIN(step, pa->step_max_bytes), smp->current - floor);
        return page_down(step);
}

bool mempol_throttle(const MemPolicy *p, const MemPolVmLimits *l, MemPolVmState *s, uint64_t current,
                     MemPolThrottle *ret) {
        const MemPolThrottleParams *t = &p->throttle;
        bool on = s->throttled, changed;

        if (!on && current > l->wmark_high)
                on = true;
        else if (on && current <= l->wmark_low)
                on = false;
        *ret = (MemPolThrottle) {
                .on = on,
                .period_usec = t->period_usec,
                .emulator_quota_usec = on ? MAX(mul_ppm(t->period_usec, t->emulator_ppm), KERNEL_MIN_QUOTA_USEC)
                                          : MEMPOL_QUOTA_MAX,
                .io_quota_usec = on ? MAX(mul_ppm(t->period_usec, t->io_ppm), KERNEL_MIN_QUOTA_USEC)
                                    : MEMPOL_QUOTA_MAX,
        };
        changed = on != s->throttled;
        s->throttled = on;
        return changed;
}

int mempol_vm_tick(const MemPolicy *p, const MemPolVmLimits *l, bool kernel_swappiness, MemPolVmState *s,
                   const MemPolSample *smp, MemPolVmDecision *ret) {
        MemPolVmDecision d = { 0 };
        uint64_t old_low;

        if (!p || !l || !s || !smp || !ret)
                return -EINVAL;
        old_low = s->low;
        d.working_set_cut = mempol_working_set_cut(p, smp);
        d.low = mempol_protect_update(p, l, s, smp);
        d.low_changed = d.low != old_low;
        d.background_bytes = mempol_background(p, l, s, smp->current);
        /* Always run: it keeps the refault history and the back-off clock. */
        d.proactive_bytes = mempol_proactive(p, l, s, smp);
        if (d.background_bytes > 0)
                d.proactive_bytes = 0; /* the watermark request covers it */
        d.throttle_changed = mempol_throttle(p, l, s, smp->current, &d.throttle);
        if (d.background_bytes > 0) {
                /* Getting under the watermark is what matters: the
                 * kernel's own balance of anon and file. */
                d.reclaim_bytes = d.background_bytes;
                d.swappiness = -1;
        } else {
                d.reclaim_bytes = d.proactive_bytes;
                d.swappiness = kernel_swappiness ? p->proactive.swappiness : -1;
        }
        d.chunk_bytes = MIN(page_down(p->reclaim.chunk_bytes), d.reclaim_bytes);
        d.growth_bytes_per_sec = smp->growth_bytes_per_sec;
        *ret = d;
        return 0;
}

/* ---- the reclaim pool ---------------------------------------------------- */

void mempol_pool_demand_add(MemPolPoolDemand *d, uint64_t growth_bytes_per_sec, uint64_t backlog_bytes) {
        if (backlog_bytes == 0)
                return;
        if (d->vms < UINT_MAX)
                d->vms++;
        d->growth_bytes_per_sec = sat_add(d->growth_bytes_per_sec, growth_bytes_per_sec);
        d->backlog_bytes = sat_add(d->backlog_bytes, backlog_bytes);
}

unsigned mempol_pool_threads(const MemPolicy *p, unsigned ncpus, const MemPolPoolDemand *d) {
        const MemPolReclaimParams *r = &p->reclaim;
        uint64_t rate, want, cap;

        if (d->vms == 0)
                return 0;
        /* Keep up with the allocation and clear the backlog within drain_usec. */
        rate = sat_add(d->growth_bytes_per_sec, mul_div(d->backlog_bytes, USEC_PER_SEC, r->drain_usec));
        want = rate / r->thread_bytes_per_sec + (rate % r->thread_bytes_per_sec != 0);
        cap = MAX(ncpus, 1u);
        if (r->max_threads > 0)
                cap = MIN(cap, r->max_threads);
        cap = MIN(cap, d->vms);
        return (unsigned) clamp_u64(want, 1, cap);
}

/* ---- the host ceiling ----------------------------------------------------- */

void mempol_host_vm(const MemPolVmLimits *l, const MemPolVmState *s, uint64_t current, uint64_t actual,
                    MemPolHostVm *ret) {
        *ret = (MemPolHostVm) {
                .priority = l->priority,
                .current = current,
                .floor = l->floor,
                .low = s->low,
                .ram = l->ram,
                .passthrough = l->passthrough,
                .balloon_room = l->balloon ? sat_sub(actual, l->min_guest) : 0,
        };
}

typedef enum HostPass {
        PASS_ABOVE_LOW,
        PASS_ABOVE_FLOOR,
        PASS_BALLOON,
} HostPass;

/* Pages VM v can still give in a pass, beyond what is already planned
 * (the two reclaim passes share the VM's reclaim: the second pass goes on
 * from where the first stopped). */
static uint64_t host_avail_pages(const MemPolHostVm *v, const MemPolHostVmPlan *plan, HostPass pass) {
        uint64_t floor = v->passthrough ? MAX(v->floor, v->ram) : v->floor;

        switch (pass) {
        case PASS_ABOVE_LOW:
                return sat_sub(sat_sub(v->current, MAX(floor, v->low)) / PAGE, plan->reclaim / PAGE);
        case PASS_ABOVE_FLOOR:
                return sat_sub(sat_sub(v->current, floor) / PAGE, plan->reclaim / PAGE);
        default:
                return sat_sub(v->balloon_room / PAGE, plan->balloon / PAGE);
        }
}

static void host_give(MemPolHostVmPlan *plan, HostPass pass, uint64_t pages) {
        uint64_t *dst = pass == PASS_BALLOON ? &plan->balloon : &plan->reclaim;

        *dst = sat_add(*dst, pages_to_bytes(pages));
}

/* Takes up to `need` pages from the VMs of one priority, in proportion to
 * what each has (floor division, then the remainder a page each in index
 * order: the remainder is below the number of VMs).  Returns pages taken. */
static uint64_t host_take_level(const MemPolHostVm *vms, size_t n, MemPolHostVmPlan *plan, HostPass pass,
                                uint32_t prio, uint64_t need) {
        uint64_t total = 0, take, given = 0;

        for (size_t i = 0; i < n; i++)
                if (vms[i].priority == prio)
                        total = sat_add(total, host_avail_pages(&vms[i], &plan[i], pass));
        if (total == 0)
                return 0;
        take = MIN(need, total);
        for (size_t i = 0; i < n; i++) {
                uint64_t avail, share;

                if (vms[i].priority != prio)
                        continue;
                avail = host_avail_pages(&vms[i], &plan[i], pass);
                share = take == total ? avail : mul_div(take, avail, total);
                host_give(&plan[i], pass, share);
                given += share;
        }
        for (size_t i = 0; i < n && given < take; i++)
                if (vms[i].priority == prio && host_avail_pages(&vms[i], &plan[i], pass) > 0) {
                        host_give(&plan[i], pass, 1);
                        given++;
                }
        return given;
}

/* The next priority above `last` (any when `first`) among the VMs;
 * false when none is left. */
static bool host_next_priority(const MemPolHostVm *vms, size_t n, bool first, uint32_t last, uint32_t *ret) {
        uint64_t next = UINT64_MAX;

        for (size_t i = 0; i < n; i++)
                if ((first || vms[i].priority > last) && vms[i].priority < next)
                        next = vms[i].priority;
        if (next == UINT64_MAX)
                return false;
        *ret = (uint32_t) next;
        return true;
}

/* Priorities lowest first; each gives from every pass in `passes` before
 * the next priority gives anything.  Returns pages still needed. */
static uint64_t host_take(const MemPolHostVm *vms, size_t n, MemPolHostVmPlan *plan, const HostPass *passes,
                          size_t n_passes, uint64_t need) {
        uint32_t prio = 0;
        bool first = true;

        while (need > 0 && host_next_priority(vms, n, first, prio, &prio)) {
                for (size_t k = 0; k < n_passes && need > 0; k++)
                        need -= host_take_level(vms, n, plan, passes[k], prio, need);
                first = false;
        }
        return need;
}

uint64_t mempol_host_growth(uint64_t bytes_per_sec, uint64_t interval_usec) {
        return mul_div(bytes_per_sec, interval_usec, USEC_PER_SEC);
}

int mempol_host_plan(const MemPolicy *p, const MemPolHostUse *host, const MemPolHostVm *vms, size_t n,
                     MemPolHostVmPlan *ret_vms, MemPolHostPlan *ret) {
        const MemPolHostParams *h;
        MemPolHostPlan plan = { 0 };
        uint64_t need;

        if (!p || !host || !ret || host->total == 0 || (n > 0 && (!vms || !ret_vms)))
                return -EINVAL;
        h = &p->host;
        plan.ceiling = mul_ppm(host->total, h->ceiling_ppm);
        plan.start = sat_sub(plan.ceiling, mul_ppm(host->total, h->start_gap_ppm));
        plan.target = sat_sub(plan.ceiling, mul_ppm(host->total, h->target_gap_ppm));
        plan.projected = sat_add(host->used, host->growth);
        plan.headroom = sat_sub(plan.start, plan.projected);
        for (size_t i = 0; i < n; i++)
                ret_vms[i] = (MemPolHostVmPlan) { 0 };
        if (plan.projected > plan.start) {
                plan.deficit = plan.projected - plan.target;
                need = plan.deficit / PAGE + (plan.deficit % PAGE != 0);
                /* Reclaim is immediate; a balloon only when that is not enough. */
                need = host_take(vms, n, ret_vms, (const HostPass[]) { PASS_ABOVE_LOW, PASS_ABOVE_FLOOR }, 2, need);
                host_take(vms, n, ret_vms, (const HostPass[]) { PASS_BALLOON }, 1, need);
                for (size_t i = 0; i < n; i++) {
                        plan.reclaim = sat_add(plan.reclaim, ret_vms[i].reclaim);
                        plan.balloon = sat_add(plan.balloon, ret_vms[i].balloon);
                }
                plan.shortfall = sat_sub(plan.deficit, sat_add(plan.reclaim, plan.balloon));
        }
        *ret = plan;
        return 0;
}

/* ---- balloon --------------------------------------------------------------- */

bool mempol_balloon_decide(const MemPolVmLimits *l, const MemPolBalloonInput *in, uint64_t *ret_target) {
        uint64_t target, ask = in->host_ask, want;
        bool far;

        if (!l->balloon) {
                *ret_target = l->ram;
                return in->target != l->ram;
        }
        target = clamp_u64(in->target ? in->target : l->ram, l->min_guest, l->ram);
        /* Past halfway from the soft target to max: reclaim is not keeping up. */
        far = in->current > l->wmark_high + (l->max - l->wmark_high) / 2;
        if (far)
                ask = MAX(ask, in->current - l->wmark_low);
        if (ask > 0) {
                /* From what the guest is now: an ask not yet honoured is not
                 * asked twice. */
                want = sat_sub(in->actual, ask);
                target = MIN(target, MAX(page_down(want), l->min_guest));
        } else if (!in->reclaiming && target < l->ram)
                target = MIN(l->ram, target + page_down(in->host_headroom / 2));
        *ret_target = target;
        return target != in->target;
}

void mempol_headroom(const MemPolVmLimits *l, uint64_t current, uint64_t actual, MemPolHeadroom *ret) {
        *ret = (MemPolHeadroom) {
                .grow_bytes = sat_sub(l->wmark_high, current),
                .limit_bytes = sat_sub(l->max, current),
                .reclaimable_bytes = sat_sub(current, l->floor),
                .balloon_bytes = l->balloon ? sat_sub(actual, l->min_guest) : 0,
        };
}

/* ---- device memory ---------------------------------------------------------- */

static uint64_t dmem_soft(const MemPolDmemSpec *s) {
        return MIN(s->soft, s->max);
}

/* Where a VM over its soft target stops being over: never below low, so
 * it does not lose protected memory in the first class. */
static uint64_t dmem_restore(const MemPolicy *p, const MemPolDmemSpec *s) {
        uint64_t soft = dmem_soft(s);
        uint64_t hyst = MAX(p->dmem.hysteresis_bytes, mul_ppm(soft, p->dmem.hysteresis_ppm));

        return MAX(sat_sub(soft, hyst), s->low);
}

/* dmem.low on a stock kernel (mempol_dmem_decide() says why). */
static uint64_t dmem_low(const MemPolicy *p, const MemPolDmemSpec *s, bool over, bool any_over) {
        if (!any_over)
                return s->low;
        return over ? dmem_restore(p, s) : MAX(s->low, dmem_soft(s));
}

static bool dmem_spec_ok(const MemPolDmemSpec *s) {
        return s->min <= s->low && s->low <= s->soft && (s->soft <= s->max || s->soft == MEMPOL_MAX);
}

/* The VM's state after this look. */
static bool dmem_next_over(const MemPolicy *p, bool kernel_high, const MemPolDmemVm *v) {
        if (kernel_high || dmem_soft(&v->spec) == MEMPOL_MAX)
                return false; /* the kernel orders eviction itself, or no target */
        if (!v->over)
                return v->current > dmem_soft(&v->spec);
        return v->current > dmem_restore(p, &v->spec);
}

int mempol_dmem_decide(const MemPolicy *p, bool kernel_high, MemPolDmemVm *vms, size_t n, MemPolDmemLimits *ret) {
        bool any_before = false, any_after = false;
        int changed = 0;

        if (!p || (n > 0 && (!vms || !ret)))
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (!dmem_spec_ok(&vms[i].spec))
                        return -EINVAL;
                any_before |= vms[i].over;
                any_after |= dmem_next_over(p, kernel_high, &vms[i]);
        }
        for (size_t i = 0; i < n; i++) {
                const MemPolDmemSpec *s = &vms[i].spec;
                uint64_t old_low = dmem_low(p, s, vms[i].over, any_before);
                bool over = dmem_next_over(p, kernel_high, &vms[i]);

                ret[i] = (MemPolDmemLimits) {
                        .max = s->max,
                        .min = s->min,
                        .low = kernel_high ? s->low : dmem_low(p, s, over, any_after),
                        .high = kernel_high ? s->soft : MEMPOL_MAX,
                        .write_high = kernel_high,
                };
                ret[i].low_changed = ret[i].low != old_low;
                changed += ret[i].low_changed;
                vms[i].over = over;
        }
        return changed;
}
