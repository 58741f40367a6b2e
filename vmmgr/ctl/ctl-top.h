/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/ctl/ctl-top.h - private to `vmmgrctl top`: one refresh's rows, as
 * both the plain snapshot and the live screen show them, and the pure
 * logic of the screen (sorting, filtering, sparklines), which a unit
 * test runs without a terminal or a vmmgrd.
 *
 *   ctl-top.c         the verb: options, fetching rows, plain snapshots
 *   ctl-top-rows.c    sorting, filtering, sparklines (no I/O)
 *   ctl-top-screen.c  the live ncurses screen and its fetch thread
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "vmmgr/ctl/ctl.h"

#define TOP_MAX_VMS 4096

typedef struct TopRow {
        char uuid[40];
        char klass[48]; /* the class, or "(custom)" */
        char state[16]; /* bursting, baseline, throttled, ...; "down" when not connected */
        char limit[32]; /* "20.0 % CPU" or "none" */
        char bank[16];
        char avail[32]; /* credit_format() of available_usec */
        int64_t available_usec;
        int64_t usage_usec; /* the vCPUs' CPU time so far */
        double cpu_pct;     /* over the last interval, when cpu_known */
        bool cpu_known;     /* the VM was in the last refresh */
        double limit_pct;   /* < 0: no limit */
} TopRow;

/* One refresh: the rows, and how many VMs vmmgrd listed (a VM removed
 * between the list and its credits has no row). */
typedef struct TopSnapshot {
        TopRow *rows;
        size_t n, listed;
} TopSnapshot;

/* The columns, in the order they are shown.  TOP_COL_SECONDS shows the
 * same figure as TOP_COL_CREDITS in CPU-seconds and sorts the same way. */
typedef enum TopColumn {
        TOP_COL_VM,
        TOP_COL_CLASS,
        TOP_COL_CREDITS,
        TOP_COL_SECONDS,
        TOP_COL_CPU,
        TOP_COL_STATE,
        TOP_COL_LIMIT,
        TOP_COL_BANK,
        _TOP_COL_MAX,
} TopColumn;

/* Header text ("CPU%") and the key that sorts by it ('p'). */
const char *top_column_name(TopColumn col);
char top_column_key(TopColumn col);
/* The column whose key is `key`; -1 if none. */
int top_column_from_key(int key);

/* Sorts rows by col, ties broken by UUID (so the order is stable from one
 * refresh to the next); descending reverses the column's order, not the
 * tie-break. */
void top_rows_sort(TopRow *rows, size_t n, TopColumn col, bool descending);

/* A filter typed by the user: "" (every row), "WORD" (rows whose class or
 * state contains WORD), "class=WORD" or "state=WORD" (that field only).
 * -EINVAL for an unknown "KEY=" prefix; *ret is then left alone. */
typedef struct TopFilter {
        char text[64]; /* as typed, shown on screen */
        char word[64];
        bool by_class, by_state;
} TopFilter;
int top_filter_parse(const char *s, TopFilter *ret);
bool top_filter_match(const TopFilter *f, const TopRow *row);
/* Moves the rows that match to the front, in order; returns how many. */
size_t top_rows_filter(TopRow *rows, size_t n, const TopFilter *f);

/* A sparkline of v[0..n) in `width` cells, the newest sample on the
 * right: each cell is the mean of the samples that fall in it, scaled
 * from 0 to vmax (vmax <= 0: the largest value) onto eight levels: the
 * block elements U+2581..U+2588 with utf8, else "_.-:=+*#".  Fewer
 * samples than cells: one a cell, blanks on the left.  Writes at most
 * size - 1 bytes and a NUL; returns the number of cells written (width
 * when size is large enough: 3 * width + 1 bytes for utf8). */
size_t top_sparkline(const double *v, size_t n, double vmax, size_t width, bool utf8, char *buf, size_t size);

/* The live screen (ctl-top-screen.c): runs until 'q', or `iterations`
 * refreshes when > 0.  Returns an exit code, or -ENOTTY (nothing
 * printed) when the terminal cannot be set up (no usable $TERM). */
int top_screen_run(const CtlCommon *c, int interval_sec, int iterations);

/* One refresh: GET /v1/vms, then each VM's credits, into *ret (rows
 * malloc'd; free with top_snapshot_done()).  CPU% comes from the usage in
 * prev (the last refresh; NULL at first) over dt_sec.  Each request gives
 * up after timeout_ms.  When the list fails, returns its exit code
 * (ctl.h) with the reason in msg.  A VM whose credits fail (removed
 * meanwhile) has no row: log_each logs why, as plain mode always has;
 * otherwise the last such reason is left in msg. */
int top_fetch(const CtlCommon *c, long timeout_ms, const TopSnapshot *prev, double dt_sec, TopSnapshot *ret, char *msg,
              size_t msg_size, bool log_each);
void top_snapshot_done(TopSnapshot *s);
/* The plain table: "vmmgr top - HH:MM:SS - N VM(s)", the header, a line
 * a row (the format scripts read; docs/vmmgrd.md). */
void top_print_table(const TopSnapshot *snap, time_t when, FILE *out);
