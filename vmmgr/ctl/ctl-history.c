/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vmmgrctl credits history UUID [--svg FILE]: balance and usage over time. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/vmid.h"
#include "vmmgr/ctl/ctl.h"

#define W 900.0
#define H 420.0
#define ML 70.0 /* margins: room for the axes' labels */
#define MR 70.0
#define MT 50.0
#define MB 50.0

typedef struct Point {
        double t, avail_s, usage_pct;
        const char *state;
} Point;

static double px(double t, double t0, double t1) {
        return ML + (t1 > t0 ? (t - t0) / (t1 - t0) : 0) * (W - ML - MR);
}

static double py(double v, double vmax) {
        return H - MB - (vmax > 0 ? v / vmax : 0) * (H - MT - MB);
}

static int write_svg(const char *path, const char *uuid, const Point *p, size_t n, double baseline_pct) {
        double t0 = p[0].t, t1 = p[n - 1].t, amax = 0.001, umax = 100.0;
        FILE *f = fopen(path, "we");

        if (!f)
                return -errno;
        for (size_t i = 0; i < n; i++) {
                if (p[i].avail_s > amax)
                        amax = p[i].avail_s;
                if (p[i].usage_pct > umax)
                        umax = p[i].usage_pct;
        }
        amax *= 1.1;
        fprintf(f,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                "<text x=\"%.0f\" y=\"22\" font-size=\"15\">CPU credits of VM %s</text>\n",
                W, H, ML, uuid);
        /* Throttled stretches, shaded. */
        for (size_t i = 1; i < n; i++)
                if (strcmp(p[i].state, "throttled") == 0)
                        fprintf(f, "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%.0f\" fill=\"#fde0dc\"/>\n",
                                px(p[i - 1].t, t0, t1), MT, px(p[i].t, t0, t1) - px(p[i - 1].t, t0, t1),
                                H - MT - MB);
        /* Axes and grid. */
        fprintf(f, "<g stroke=\"#999\" stroke-width=\"1\">\n<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\"/>\n"
                   "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\"/>\n"
                   "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\"/>\n</g>\n",
                ML, MT, ML, H - MB, W - MR, MT, W - MR, H - MB, ML, H - MB, W - MR, H - MB);
        for (int k = 0; k <= 4; k++) {
                double ya = py(amax * k / 4, amax);
                fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", ML, ya, W - MR, ya);
                fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#1f5fbf\">%.2f</text>\n", ML - 6,
                        ya + 4, amax * k / 4);
                fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" fill=\"#c0392b\">%.0f %%</text>\n", W - MR + 6, ya + 4,
                        umax * k / 4);
        }
        for (int k = 0; k <= 5; k++)
                fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f s</text>\n",
                        px(t0 + (t1 - t0) * k / 5, t0, t1), H - MB + 18, (t1 - t0) * k / 5);
        fprintf(f, "<text x=\"14\" y=\"%.0f\" fill=\"#1f5fbf\" transform=\"rotate(-90 14 %.0f)\">credits available "
                   "(CPU-seconds)</text>\n",
                H / 2 + 70, H / 2 + 70);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" fill=\"#c0392b\" transform=\"rotate(90 %.0f %.0f)\">vCPU usage "
                   "(%% of one CPU)</text>\n",
                W - 16, H / 2 - 60, W - 16, H / 2 - 60);
        /* Baseline, available credits, usage. */
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#c0392b\" stroke-dasharray=\"4 4\"/>\n",
                ML, py(baseline_pct, umax), W - MR, py(baseline_pct, umax));
        fputs("<polyline fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"2\" points=\"", f);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%.1f,%.1f ", px(p[i].t, t0, t1), py(p[i].avail_s > 0 ? p[i].avail_s : 0, amax));
        fputs("\"/>\n<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"1.5\" points=\"", f);
        for (size_t i = 1; i < n; i++)
                fprintf(f, "%.1f,%.1f ", px(p[i].t, t0, t1), py(p[i].usage_pct, umax));
        fprintf(f, "\"/>\n<text x=\"%.0f\" y=\"40\" fill=\"#1f5fbf\">— credits available</text>\n"
                   "<text x=\"%.0f\" y=\"40\" fill=\"#c0392b\">— usage   - - baseline</text>\n"
                   "<rect x=\"%.0f\" y=\"31\" width=\"12\" height=\"10\" fill=\"#fde0dc\"/>"
                   "<text x=\"%.0f\" y=\"40\">throttled</text>\n</svg>\n",
                ML + 200, ML + 360, ML + 520, ML + 536);
        if (fclose(f) != 0)
                return -errno;
        return 0;
}

int ctl_credits_history(const CtlCommon *c, const VmId *id, char **rest, int n) {
        struct json_object *reply = NULL, *cr = NULL, *pts;
        const char *svg = NULL;
        char path[160];
        Point *p = NULL;
        size_t np;
        int r;

        for (int i = 0; i < n; i++) {
                if (strcmp(rest[i], "--svg") == 0 && i + 1 < n)
                        svg = rest[++i];
                else {
                        log_error("Unexpected argument \"%s\" (credits history UUID [--svg FILE])", rest[i]);
                        return CTL_EXIT_USAGE;
                }
        }
        snprintf(path, sizeof(path), "/v1/vms/%s/credits/history", id->str);
        r = ctl_call(c, "GET", path, NULL, &reply);
        if (r != 0)
                return r;
        if (c->json && !svg) {
                ctl_print_json(reply);
                json_object_put(reply);
                return 0;
        }
        pts = json_object_object_get(reply, "points");
        np = pts ? json_object_array_length(pts) : 0;
        if (np < 2) {
                log_error("Not enough history yet (%zu sample(s)); vmmgrd samples once a second", np);
                json_object_put(reply);
                return CTL_EXIT_FAILURE;
        }
        p = calloc(np, sizeof(Point));
        if (!p) {
                json_object_put(reply);
                return CTL_EXIT_FAILURE;
        }
        for (size_t i = 0; i < np; i++) {
                struct json_object *e = json_object_array_get_idx(pts, i);
                p[i].t = (double) ctl_int(e, "time_usec") / 1e6;
                p[i].avail_s = (double) ctl_int(e, "available_usec") / 1e6;
                p[i].state = ctl_str(e, "state");
                if (i > 0 && p[i].t > p[i - 1].t)
                        p[i].usage_pct = (double) (ctl_int(e, "usage_usec") -
                                                   ctl_int(json_object_array_get_idx(pts, i - 1), "usage_usec")) /
                                         1e4 / (p[i].t - p[i - 1].t);
        }
        if (svg) {
                double baseline = 0;
                snprintf(path, sizeof(path), "/v1/vms/%s/credits", id->str);
                if (ctl_call(c, "GET", path, NULL, &cr) == 0) {
                        struct json_object *spec = json_object_object_get(cr, "spec");
                        baseline = json_object_get_double(json_object_object_get(spec, "baseline")) * 100.0 *
                                   (double) ctl_int(spec, "vcpus");
                }
                r = write_svg(svg, id->str, p, np, baseline);
                if (r < 0) {
                        log_error_errno(r, "Cannot write %s: %m", svg);
                        r = CTL_EXIT_FAILURE;
                } else
                        printf("Wrote %s: %zu samples over %.0f s\n", svg, np, p[np - 1].t - p[0].t);
        } else {
                printf("%10s  %14s  %8s  %s\n", "T (s)", "CREDITS (CPU-s)", "CPU %", "STATE");
                for (size_t i = 0; i < np; i++)
                        printf("%10.1f  %14.3f  %8.1f  %s\n", p[i].t - p[0].t, p[i].avail_s, p[i].usage_pct, p[i].state);
        }
        free(p);
        json_object_put(cr);
        json_object_put(reply);
        return r;
}
