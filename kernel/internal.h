/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kernel/internal.h - private: pieces of the real backend. */
#pragma once

#include "kernel/backend.h"

/* Finds the cgroup hierarchies of this host (discover.c). */
int discover_layout(KBackendLayout *ret);
/* The cgroupfs + /proc backend over a discovered layout (backend-real.c). */
int real_backend_new(const KBackendLayout *layout, const char *subtree, void **ret_be);
extern const KBackendOps real_backend_ops;
/* 1 if the TASKSTATS genetlink family resolves (taskstats.c). */
int taskstats_family_available(void);
