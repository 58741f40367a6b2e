/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/common/model-world.h - a kernel model with vmmgr's subtree and two
 * VMs placed as vmmgrd places them, for cmocka tests of the layers above
 * the kernel: each VM a process in its vm-<uuid> group with a vCPU thread
 * in vcpus/, an emulator thread in emulator/ and an iothread in io/.
 */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "kernel/kernel.h"
#include "kernel/model/kmodel.h"

#define MODEL_WORLD_VMS 2

typedef struct ModelWorld {
        KModel *model;
        KHost *host;
        VmId vm[MODEL_WORLD_VMS];
        pid_t vcpu[MODEL_WORLD_VMS], emu[MODEL_WORLD_VMS], io[MODEL_WORLD_VMS];
} ModelWorld;

static inline void model_world_open(ModelWorld *w, const KModelConfig *cfg) {
        static const char *const ids[MODEL_WORLD_VMS] = { "11111111-1111-4111-8111-111111111111",
                                                          "22222222-2222-4222-8222-222222222222" };

        memset(w, 0, sizeof(*w));
        assert_int_equal(km_new(cfg, &w->model), 0);
        assert_int_equal(kh_open_model(w->model, NULL, &w->host), 0);
        assert_int_equal(kh_subtree_setup(w->host), 0);
        for (int i = 0; i < MODEL_WORLD_VMS; i++) {
                pid_t pid = km_process_new(w->model);

                assert_int_equal(vm_id_parse(ids[i], &w->vm[i]), 0);
                assert_int_equal(kh_vm_create(w->host, &w->vm[i]), 0);
                w->vcpu[i] = km_thread_new(w->model, pid);
                w->emu[i] = km_thread_new(w->model, pid);
                w->io[i] = km_thread_new(w->model, pid);
                assert_int_equal(kh_vm_attach_process(w->host, &w->vm[i], pid), 0);
                assert_int_equal(kh_vm_attach_thread(w->host, &w->vm[i], CG_ROLE_VCPUS, w->vcpu[i]), 0);
                assert_int_equal(kh_vm_attach_thread(w->host, &w->vm[i], CG_ROLE_EMULATOR, w->emu[i]), 0);
                assert_int_equal(kh_vm_attach_thread(w->host, &w->vm[i], CG_ROLE_IO, w->io[i]), 0);
        }
}

static inline void model_world_close(ModelWorld *w) {
        kh_free(w->host);
        km_free(w->model);
}
