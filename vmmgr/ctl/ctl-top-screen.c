/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vmmgr/ctl/ctl-top-screen.c - `vmmgrctl top` on a terminal: a live
 * ncurses screen that sorts, filters and shows one VM's history.
 *
 * Two threads.  The fetcher asks vmmgrd for the rows every interval (and
 * for the history of the VM on show), each request bounded by
 * TOP_SCREEN_TIMEOUT_MS and given up within about a second when the
 * screen quits; it publishes what it got under a lock and writes a byte
 * to a pipe.  The screen thread owns the terminal: it waits in poll() on
 * the keyboard and that pipe, so keys are answered at once however slow
 * vmmgrd is, and a vmmgrd that does not answer shows as an error line
 * with the last rows kept.
 */
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <ncurses.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/macros.h"
#include "vmmgr/api/http-client.h"
#include "vmmgr/ctl/ctl-top.h"

/* Per request; a refresh of N VMs makes N + 1 of them. */
#define TOP_SCREEN_TIMEOUT_MS 2000
#define TOP_ROW_PREFIX 2 /* "> " marks the selected VM */

typedef struct History {
        char uuid[40];
        double *avail_s, *cpu_pct;
        char *states; /* one mark a sample: '^' bursting, '-' baseline, '_' throttled */
        size_t n;
        double span_s;
        char error[256];
} History;

typedef struct Shared {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        atomic_bool stop;
        int wake[2]; /* the fetcher writes a byte after each publish */
        /* asked by the screen: */
        char want_history[40]; /* "" for none */
        bool history_now;      /* fetch it now, not at the next tick */
        /* published by the fetcher: */
        TopSnapshot snap;
        unsigned generation; /* refreshes published */
        double fetched_at;   /* CLOCK_REALTIME seconds */
        char error[512];     /* the last refresh's, "" when it went well */
        int rc;              /* the last refresh's exit code (ctl.h) */
        History hist;
        unsigned hist_generation;
} Shared;

typedef struct Screen {
        const CtlCommon *c;
        int interval;
        Shared *sh;
        bool utf8;
        /* what is shown */
        TopSnapshot snap;  /* sorted, filtered copy */
        double fetched_at; /* of the rows shown; 0: none yet */
        char error[512];
        int rc;
        History hist;
        TopColumn sort_col;
        bool sort_desc;
        TopFilter filter;
        char selected[40];
        size_t first; /* the first row shown (scrolling) */
        bool history_view;
        /* the filter prompt, while open */
        bool prompt;
        char input[64];
        char note[128]; /* a message on the last line until the next key */
} Screen;

static void history_done(History *h) {
        free(h->avail_s);
        free(h->cpu_pct);
        free(h->states);
        *h = (History){ 0 };
}

/* ---- the fetcher -------------------------------------------------------- */

static void fetch_history(const CtlCommon *c, const char *uuid, History *ret) {
        struct json_object *reply = NULL, *pts;
        char path[128];
        size_t n;
        int r;

        *ret = (History){ 0 };
        snprintf(ret->uuid, sizeof(ret->uuid), "%s", uuid);
        snprintf(path, sizeof(path), "/v1/vms/%s/credits/history", uuid);
        r = ctl_call_quiet(c, "GET", path, NULL, TOP_SCREEN_TIMEOUT_MS, &reply, ret->error, sizeof(ret->error));
        if (r != CTL_EXIT_OK)
                return;
        pts = json_object_object_get(reply, "points");
        n = pts ? json_object_array_length(pts) : 0;
        ret->avail_s = calloc(n + 1, sizeof(double));
        ret->cpu_pct = calloc(n + 1, sizeof(double));
        ret->states = calloc(n + 1, 1);
        if (!ret->avail_s || !ret->cpu_pct || !ret->states) {
                history_done(ret);
                snprintf(ret->uuid, sizeof(ret->uuid), "%s", uuid);
                snprintf(ret->error, sizeof(ret->error), "out of memory");
                json_object_put(reply);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                struct json_object *e = json_object_array_get_idx(pts, i), *p = NULL;
                const char *st = ctl_str(e, "state");
                double t = (double) ctl_int(e, "time_usec") / 1e6, tp;

                ret->avail_s[i] = (double) ctl_int(e, "available_usec") / 1e6;
                ret->states[i] = strcmp(st, "bursting") == 0 ? '^' : strcmp(st, "throttled") == 0 ? '_' : '-';
                if (i > 0) {
                        p = json_object_array_get_idx(pts, i - 1);
                        tp = (double) ctl_int(p, "time_usec") / 1e6;
                        if (t > tp)
                                ret->cpu_pct[i] =
                                        (double) (ctl_int(e, "usage_usec") - ctl_int(p, "usage_usec")) / 1e4 / (t - tp);
                        ret->span_s = t - (double) ctl_int(json_object_array_get_idx(pts, 0), "time_usec") / 1e6;
                }
        }
        /* the first sample has no usage of its own: as the second */
        if (n > 1)
                ret->cpu_pct[0] = ret->cpu_pct[1];
        ret->n = n;
        json_object_put(reply);
}

static void *fetcher(void *userdata) {
        Screen *s = userdata;
        Shared *sh = s->sh;
        TopSnapshot prev = { 0 };
        double last = now_sec();

        while (!atomic_load(&sh->stop)) {
                double now = now_sec();
                TopSnapshot snap;
                History hist = { 0 };
                char msg[512] = "", want[40];
                struct timespec until;
                int r;

                r = top_fetch(s->c, TOP_SCREEN_TIMEOUT_MS, &prev, now - last, &snap, msg, sizeof(msg), false);
                pthread_mutex_lock(&sh->lock);
                snprintf(want, sizeof(want), "%s", sh->want_history);
                sh->history_now = false;
                pthread_mutex_unlock(&sh->lock);
                if (want[0])
                        fetch_history(s->c, want, &hist);
                if (atomic_load(&sh->stop)) {
                        top_snapshot_done(&snap);
                        history_done(&hist);
                        break;
                }
                pthread_mutex_lock(&sh->lock);
                snprintf(sh->error, sizeof(sh->error), "%s", msg);
                sh->rc = r;
                if (r == CTL_EXIT_OK) {
                        /* sh->snap is the screen's copy source; prev is ours */
                        top_snapshot_done(&prev);
                        prev = snap;
                        last = now;
                        free(sh->snap.rows);
                        sh->snap = (TopSnapshot){ .n = snap.n,
                                                  .listed = snap.listed,
                                                  .rows = malloc((snap.n ? snap.n : 1) * sizeof(TopRow)) };
                        if (sh->snap.rows)
                                memcpy(sh->snap.rows, snap.rows, snap.n * sizeof(TopRow));
                        else
                                sh->snap.n = 0;
                        sh->fetched_at = (double) time(NULL);
                }
                if (want[0]) {
                        history_done(&sh->hist);
                        sh->hist = hist;
                        sh->hist_generation++;
                }
                sh->generation++;
                (void) !write(sh->wake[1], "x", 1);
                /* until the next tick, or at once for a history asked for */
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += s->interval;
                while (!atomic_load(&sh->stop) && !sh->history_now &&
                       pthread_cond_timedwait(&sh->cond, &sh->lock, &until) == 0)
                        ;
                pthread_mutex_unlock(&sh->lock);
        }
        top_snapshot_done(&prev);
        return NULL;
}

/* ---- cells -------------------------------------------------------------- */

static const int col_width[_TOP_COL_MAX] = {
        [TOP_COL_VM] = 36, [TOP_COL_CLASS] = 10, [TOP_COL_CREDITS] = 9, [TOP_COL_SECONDS] = 9,
        [TOP_COL_CPU] = 7, [TOP_COL_STATE] = 10, [TOP_COL_LIMIT] = 14,  [TOP_COL_BANK] = 9,
};
/* numbers are right-aligned, as in the plain table */
static bool col_right(TopColumn col) {
        return col == TOP_COL_CREDITS || col == TOP_COL_SECONDS || col == TOP_COL_CPU;
}

static void cell_text(const TopRow *row, TopColumn col, char *buf, size_t size) {
        switch (col) {
        case TOP_COL_VM:
                snprintf(buf, size, "%s", row->uuid);
                break;
        case TOP_COL_CLASS:
                snprintf(buf, size, "%s", row->klass);
                break;
        case TOP_COL_CREDITS:
                snprintf(buf, size, "%s", row->avail);
                break;
        case TOP_COL_SECONDS:
                snprintf(buf, size, "%.2f", (double) row->available_usec / 1e6);
                break;
        case TOP_COL_CPU:
                if (row->cpu_known)
                        snprintf(buf, size, "%.1f", row->cpu_pct);
                else
                        snprintf(buf, size, "-");
                break;
        case TOP_COL_STATE:
                snprintf(buf, size, "%s", row->state);
                break;
        case TOP_COL_LIMIT:
                snprintf(buf, size, "%s", row->limit);
                break;
        case TOP_COL_BANK:
        default:
                snprintf(buf, size, "%s", row->bank);
                break;
        }
}

/* ---- clipped output: nothing wraps past the right edge ---------------- */

/* Writes text at (y, *x), cut at the right edge, and advances *x by the
 * cells it takes (a UTF-8 sequence is one cell: the text here has no
 * wide characters). */
static void put_text(int y, int *x, const char *text) {
        size_t i = 0;
        int cells = 0, room = COLS - *x;

        while (text[i] && cells < room) {
                i++;
                while ((text[i] & 0xC0) == 0x80)
                        i++;
                cells++;
        }
        if (i > 0)
                mvaddnstr(y, *x, text, (int) i);
        *x += cells;
}

_printf_(2, 3) static void line(int y, const char *fmt, ...) {
        char buf[1024];
        va_list ap;
        int x = 0;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        put_text(y, &x, buf);
}

/* A cell of `width` cells and the blank after it; `extra` bytes of text
 * take no cell of their own (a UTF-8 arrow's continuation bytes). */
static void put_cell(int y, int *x, const char *text, int width, int extra, bool right) {
        char buf[128];

        snprintf(buf, sizeof(buf), right ? "%*s " : "%-*s ", width + extra, text);
        put_text(y, x, buf);
}

/* ---- drawing ------------------------------------------------------------ */

static const char *sort_arrow(const Screen *s) {
        if (s->utf8)
                return s->sort_desc ? "\u25bc" : "\u25b2";
        return s->sort_desc ? "v" : "^";
}

static void draw_title(const Screen *s) {
        char stamp[32] = "--:--:--";
        time_t t = (time_t) s->fetched_at;

        if (s->fetched_at > 0)
                strftime(stamp, sizeof(stamp), "%H:%M:%S", localtime(&t));
        attron(A_BOLD);
        if (s->history_view)
                line(0, "vmmgr top - %s - history of VM %s", stamp, s->hist.uuid[0] ? s->hist.uuid : s->selected);
        else if (s->filter.word[0])
                line(0, "vmmgr top - %s - %zu of %zu VM(s) shown", stamp, s->snap.n, s->snap.listed);
        else
                line(0, "vmmgr top - %s - %zu VM(s)", stamp, s->snap.listed);
        attroff(A_BOLD);
}

#define PROMPT "filter (class or state; class=WORD, state=WORD; empty clears): "

static void draw_last_line(const Screen *s) {
        int y = LINES - 1;

        if (s->prompt) {
                line(y, PROMPT "%s", s->input);
                return;
        }
        if (s->note[0])
                line(y, "%s", s->note);
        else if (s->error[0]) {
                attron(A_BOLD);
                line(y, "error: %s", s->error);
                attroff(A_BOLD);
        } else if (s->history_view)
                line(y, "Esc/h/Left: back   q: quit");
        else
                line(y, "< >: sort column  u c a p s l b: sort by  r: reverse  / f: filter  Enter h: history  q: quit");
}

static void draw_list(Screen *s) {
        int y = 1, x = 0, rows_room;
        size_t sel = 0;

        line(y++, "sort: %s (%s) [%c]   filter: %s", top_column_name(s->sort_col),
             s->sort_desc ? "descending" : "ascending", top_column_key(s->sort_col),
             s->filter.word[0] ? s->filter.text : "none");
        y++;
        attron(A_REVERSE);
        put_cell(y, &x, "", TOP_ROW_PREFIX - 1, 0, false);
        for (int col = 0; col < _TOP_COL_MAX; col++) {
                const char *arrow = sort_arrow(s);
                bool sorted =
                        (TopColumn) col == s->sort_col || (s->sort_col == TOP_COL_CREDITS && col == TOP_COL_SECONDS);
                char head[48];

                snprintf(head, sizeof(head), "%s%s", top_column_name(col), sorted ? arrow : "");
                if (sorted)
                        attron(A_BOLD);
                put_cell(y, &x, head, col_width[col], sorted ? (int) strlen(arrow) - 1 : 0, col_right(col));
                if (sorted)
                        attroff(A_BOLD);
        }
        /* the header's bar runs to the right edge */
        while (x < COLS)
                put_text(y, &x, " ");
        attroff(A_REVERSE);
        y++;
        /* keep the selection on its VM; else the first row */
        for (size_t i = 0; i < s->snap.n; i++)
                if (strcmp(s->snap.rows[i].uuid, s->selected) == 0)
                        sel = i;
        if (s->snap.n > 0)
                snprintf(s->selected, sizeof(s->selected), "%s", s->snap.rows[sel].uuid);
        rows_room = LINES - 1 - y;
        if (rows_room < 1)
                return;
        if (sel < s->first)
                s->first = sel;
        if (sel >= s->first + (size_t) rows_room)
                s->first = sel - (size_t) rows_room + 1;
        if (s->first >= s->snap.n)
                s->first = 0;
        for (size_t i = s->first; i < s->snap.n && y < LINES - 1; i++, y++) {
                const TopRow *row = &s->snap.rows[i];

                x = 0;
                if (i == sel)
                        attron(A_REVERSE);
                put_cell(y, &x, i == sel ? ">" : "", TOP_ROW_PREFIX - 1, 0, false);
                for (int col = 0; col < _TOP_COL_MAX; col++) {
                        char text[64];

                        cell_text(row, col, text, sizeof(text));
                        put_cell(y, &x, text, col_width[col], 0, col_right(col));
                }
                if (i == sel)
                        attroff(A_REVERSE);
        }
        if (s->snap.n == 0)
                line(y, "%s", s->snap.listed > 0 ? "  (no VM matches the filter)" : "  (no VM registered)");
}

static double max_of(const double *v, size_t n) {
        double m = 0;
        for (size_t i = 0; i < n; i++)
                if (v[i] > m)
                        m = v[i];
        return m;
}

/* Sparklines are drawn from column 2 to 2 cells before the right edge. */
#define SPARK_INDENT 2

static void draw_history(Screen *s) {
        const History *h = &s->hist;
        const TopRow *row = NULL;
        int width = COLS - 2 * SPARK_INDENT, y = 1, x;
        size_t bufsize, cells;
        double m;
        char *buf;

        for (size_t i = 0; i < s->snap.n; i++)
                if (strcmp(s->snap.rows[i].uuid, s->selected) == 0)
                        row = &s->snap.rows[i];
        if (row)
                line(y, "class %s   state %s   credits %s   limit %s   bank %s", row->klass, row->state, row->avail,
                     row->limit, row->bank);
        y += 2;
        if (strcmp(h->uuid, s->selected) != 0) {
                line(y, "fetching the history of %s ...", s->selected);
                return;
        }
        if (h->error[0]) {
                line(y, "no history: %s", h->error);
                return;
        }
        if (h->n < 2) {
                line(y, "not enough history yet (%zu sample(s)); vmmgrd samples once a second", h->n);
                return;
        }
        if (width < 8)
                return;
        bufsize = (size_t) width * 3 + 1;
        buf = malloc(bufsize);
        if (!buf)
                return;
        /* Credits from 0 to the most there were (a hundredth of a CPU-s at
         * least: an empty bank is a flat line, not noise scaled up). */
        m = max_of(h->avail_s, h->n);
        line(y++, "credits available (CPU-s) over the last %.0f s: now %.2f, max %.2f", h->span_s, h->avail_s[h->n - 1],
             m);
        top_sparkline(h->avail_s, h->n, m > 0.01 ? m : 0.01, (size_t) width, s->utf8, buf, bufsize);
        x = SPARK_INDENT;
        put_text(y++, &x, buf);
        y++;
        /* CPU from 0 to one whole CPU, or more where the VM used more */
        m = max_of(h->cpu_pct, h->n);
        line(y++, "vCPU usage (%% of one CPU): now %.1f, max %.1f", h->cpu_pct[h->n - 1], m);
        top_sparkline(h->cpu_pct, h->n, m > 100 ? m : 100, (size_t) width, s->utf8, buf, bufsize);
        x = SPARK_INDENT;
        put_text(y++, &x, buf);
        y++;
        /* the state of the last sample in each cell, aligned with the lines */
        line(y++, "state: ^ bursting  - baseline  _ throttled");
        cells = h->n < (size_t) width ? h->n : (size_t) width;
        memset(buf, ' ', (size_t) width);
        for (size_t c = 0; c < cells; c++)
                buf[(size_t) width - cells + c] = h->states[(c + 1) * h->n / cells - 1];
        buf[width] = '\0';
        x = SPARK_INDENT;
        put_text(y, &x, buf);
        free(buf);
}

static void draw(Screen *s) {
        erase();
        draw_title(s);
        if (s->history_view)
                draw_history(s);
        else
                draw_list(s);
        draw_last_line(s);
        curs_set(s->prompt ? 1 : 0);
        if (s->prompt)
                move(LINES - 1, MIN((int) strlen(PROMPT) + (int) strlen(s->input), COLS - 1));
        refresh();
}

/* ---- state -------------------------------------------------------------- */

/* Takes the fetcher's latest rows and history; true when anything new. */
static bool take_published(Screen *s, unsigned *seen, unsigned *seen_hist) {
        Shared *sh = s->sh;
        bool fresh = false;

        pthread_mutex_lock(&sh->lock);
        if (sh->generation != *seen) {
                *seen = sh->generation;
                snprintf(s->error, sizeof(s->error), "%s", sh->error);
                s->rc = sh->rc;
                if (sh->rc == CTL_EXIT_OK) {
                        TopRow *rows = malloc((sh->snap.n ? sh->snap.n : 1) * sizeof(TopRow));
                        if (rows) {
                                memcpy(rows, sh->snap.rows, sh->snap.n * sizeof(TopRow));
                                free(s->snap.rows);
                                s->snap = (TopSnapshot){ .rows = rows, .n = sh->snap.n, .listed = sh->snap.listed };
                                s->fetched_at = sh->fetched_at;
                        }
                }
                fresh = true;
        }
        if (sh->hist_generation != *seen_hist) {
                *seen_hist = sh->hist_generation;
                history_done(&s->hist);
                s->hist = sh->hist;
                sh->hist = (History){ 0 };
                /* the fetcher keeps no copy: the next refresh makes a new one */
        }
        pthread_mutex_unlock(&sh->lock);
        return fresh;
}

/* Sorting and filtering work on the screen's copy of the rows. */
static void arrange(Screen *s) {
        s->snap.n = top_rows_filter(s->snap.rows, s->snap.n, &s->filter);
        top_rows_sort(s->snap.rows, s->snap.n, s->sort_col, s->sort_desc);
}

static void ask_history(Screen *s, const char *uuid) {
        pthread_mutex_lock(&s->sh->lock);
        snprintf(s->sh->want_history, sizeof(s->sh->want_history), "%s", uuid);
        if (uuid[0]) {
                s->sh->history_now = true;
                pthread_cond_signal(&s->sh->cond);
        }
        pthread_mutex_unlock(&s->sh->lock);
}

static void move_selection(Screen *s, int delta) {
        size_t sel = 0;

        if (s->snap.n == 0)
                return;
        for (size_t i = 0; i < s->snap.n; i++)
                if (strcmp(s->snap.rows[i].uuid, s->selected) == 0)
                        sel = i;
        if (delta < 0 && sel > 0)
                sel--;
        else if (delta > 0 && sel + 1 < s->snap.n)
                sel++;
        snprintf(s->selected, sizeof(s->selected), "%s", s->snap.rows[sel].uuid);
}

static void set_sort(Screen *s, TopColumn col) {
        if (col == s->sort_col)
                s->sort_desc = !s->sort_desc;
        else {
                s->sort_col = col;
                /* figures read best largest first, names A to Z */
                s->sort_desc =
                        col == TOP_COL_CREDITS || col == TOP_COL_SECONDS || col == TOP_COL_CPU || col == TOP_COL_LIMIT;
        }
        top_rows_sort(s->snap.rows, s->snap.n, s->sort_col, s->sort_desc);
}

/* The next column to the left (dir -1) or right, round; (CPU-s) sorts as
 * CREDITS does and is passed over. */
static TopColumn step_column(TopColumn col, int dir) {
        do
                col = (TopColumn) (((int) col + dir + _TOP_COL_MAX) % _TOP_COL_MAX);
        while (col == TOP_COL_SECONDS);
        return col;
}

/* A key on the filter prompt (Enter applies it, Esc cancels). */
static void prompt_key(Screen *s, int ch) {
        size_t len = strlen(s->input);

        if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
                TopFilter f;
                s->prompt = false;
                if (top_filter_parse(s->input, &f) < 0)
                        snprintf(s->note, sizeof(s->note), "bad filter \"%s\": use WORD, class=WORD or state=WORD",
                                 s->input);
                else
                        s->filter = f;
                /* the rows it hid are in the next refresh; filter what is here now */
                s->snap.n = top_rows_filter(s->snap.rows, s->snap.n, &s->filter);
        } else if (ch == 27)
                s->prompt = false;
        else if (ch == 21) /* Ctrl-U */
                s->input[0] = '\0';
        else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
                if (len > 0)
                        s->input[len - 1] = '\0';
        } else if (ch >= 32 && ch < 127 && len + 1 < sizeof(s->input)) {
                s->input[len] = (char) ch;
                s->input[len + 1] = '\0';
        }
}

/* One key; returns false to quit. */
static bool key(Screen *s, int ch) {
        int col;

        if (ch != KEY_RESIZE)
                s->note[0] = '\0';
        if (s->prompt) {
                prompt_key(s, ch);
                return true;
        }
        if (ch == 'q' || ch == 'Q')
                return false;
        if (s->history_view) {
                if (ch == 27 || ch == 'h' || ch == KEY_LEFT || ch == KEY_BACKSPACE || ch == 127) {
                        s->history_view = false;
                        ask_history(s, "");
                }
                return true;
        }
        switch (ch) {
        case '<':
        case KEY_SLEFT:
                set_sort(s, step_column(s->sort_col, -1));
                return true;
        case '>':
        case KEY_SRIGHT:
                set_sort(s, step_column(s->sort_col, +1));
                return true;
        case 'r':
                s->sort_desc = !s->sort_desc;
                top_rows_sort(s->snap.rows, s->snap.n, s->sort_col, s->sort_desc);
                return true;
        case '/':
        case 'f':
                s->prompt = true;
                snprintf(s->input, sizeof(s->input), "%s", s->filter.text);
                return true;
        case KEY_UP:
        case 'k':
                move_selection(s, -1);
                return true;
        case KEY_DOWN:
        case 'j':
                move_selection(s, +1);
                return true;
        case '\n':
        case '\r':
        case KEY_ENTER:
        case 'h':
                if (s->snap.n == 0) {
                        snprintf(s->note, sizeof(s->note), "no VM to show");
                        return true;
                }
                s->history_view = true;
                ask_history(s, s->selected);
                return true;
        case 12: /* Ctrl-L */
                clearok(curscr, TRUE);
                return true;
        default:
                col = top_column_from_key(ch);
                if (col >= 0)
                        set_sort(s, (TopColumn) col);
                return true;
        }
}

/* ---- the loop ----------------------------------------------------------- */

int top_screen_run(const CtlCommon *c, int interval_sec, int iterations) {
        Shared sh = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .wake = { -1, -1 } };
        Screen s = { .interval = interval_sec, .sh = &sh, .sort_col = TOP_COL_VM };
        CtlCommon cc = *c;
        unsigned seen = 0, seen_hist = 0;
        int refreshes = 0, r = CTL_EXIT_OK;
        pthread_t thread;
        SCREEN *scr;
        bool running = true;

        setlocale(LC_CTYPE, "");
        s.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
        cc.cancel = &sh.stop;
        s.c = &cc;
        if (http_global_init() < 0 || pipe2(sh.wake, O_CLOEXEC | O_NONBLOCK) < 0) {
                fprintf(stderr, "vmmgrctl top: cannot set up\n");
                return CTL_EXIT_FAILURE;
        }
        /* newterm(), unlike initscr(), returns NULL for a $TERM it does not know */
        scr = newterm(NULL, stdout, stdin);
        if (!scr) {
                close(sh.wake[0]);
                close(sh.wake[1]);
                return -ENOTTY;
        }
        set_term(scr);
        cbreak();
        noecho();
        nonl();
        keypad(stdscr, TRUE);
        nodelay(stdscr, TRUE);
        set_escdelay(25);
        curs_set(0);
        if (pthread_create(&thread, NULL, fetcher, &s) != 0) {
                endwin();
                delscreen(scr);
                fprintf(stderr, "vmmgrctl top: cannot start its fetcher\n");
                return CTL_EXIT_FAILURE;
        }
        draw(&s);
        while (running) {
                struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN },
                                       { .fd = sh.wake[0], .events = POLLIN } };
                char drain[64];
                bool dirty = false;
                int ch;

                /* SIGWINCH interrupts poll(); ncurses then returns KEY_RESIZE */
                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        break;
                while (read(sh.wake[0], drain, sizeof(drain)) > 0)
                        ;
                if (take_published(&s, &seen, &seen_hist)) {
                        arrange(&s);
                        refreshes++;
                        dirty = true;
                        /* no vmmgrd to begin with: say so as every verb does */
                        if (s.rc != CTL_EXIT_OK && s.fetched_at == 0) {
                                r = s.rc;
                                running = false;
                        }
                }
                if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
                        running = false; /* the terminal went away */
                while (running && (ch = getch()) != ERR) {
                        running = key(&s, ch);
                        dirty = true;
                }
                if (iterations > 0 && refreshes >= iterations)
                        running = false;
                if (running && dirty)
                        draw(&s);
        }
        endwin();
        atomic_store(&sh.stop, true);
        pthread_mutex_lock(&sh.lock);
        pthread_cond_signal(&sh.cond);
        pthread_mutex_unlock(&sh.lock);
        pthread_join(thread, NULL);
        delscreen(scr);
        /* After --iterations the last table stays on the terminal, as the
         * plain mode leaves it. */
        if (r != CTL_EXIT_OK)
                log_error("%s", s.error);
        else if (iterations > 0 && refreshes >= iterations)
                top_print_table(&s.snap, (time_t) s.fetched_at, stdout);
        top_snapshot_done(&s.snap);
        top_snapshot_done(&sh.snap);
        history_done(&s.hist);
        history_done(&sh.hist);
        close(sh.wake[0]);
        close(sh.wake[1]);
        return r;
}
