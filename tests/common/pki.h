/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tests/common/pki.h - certificates for the TLS tests, made with GnuTLS:
 * a CA, a server certificate for 127.0.0.1 and client certificates, each
 * with an ECDSA P-256 key, valid from an hour ago for a day.
 *
 *   Pki ca, server;
 *   pki_make(&ca, "vmmgr test CA", PKI_CA, NULL);       // self-signed
 *   pki_make(&server, "vmmgrd", PKI_SERVER, &ca);        // signed by ca
 *   pki_write(dir, "server", &server);                   // server.crt, server.key
 *   pki_done(&server);
 *
 * Every step asserts (cmocka): a test never goes on with a certificate
 * that is not there.
 */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

typedef struct Pki {
        gnutls_x509_privkey_t key;
        gnutls_x509_crt_t crt;
} Pki;

typedef enum PkiKind { PKI_CA, PKI_SERVER, PKI_CLIENT } PkiKind;

/* A new key and certificate for `cn`: a CA is self-signed (issuer NULL);
 * a server or client certificate is signed by `issuer`, a server's for
 * the address 127.0.0.1. */
static inline void pki_make(Pki *p, const char *cn, PkiKind kind, const Pki *issuer) {
        static unsigned serial = 1;
        unsigned char id[64];
        size_t id_len = sizeof id;
        time_t now = time(NULL);
        unsigned char ser[4] = { 0, 0, 0, (unsigned char) serial++ };

        assert_int_equal(gnutls_x509_privkey_init(&p->key), 0);
        assert_int_equal(gnutls_x509_privkey_generate(p->key, GNUTLS_PK_ECDSA,
                                                      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                         0);
        assert_int_equal(gnutls_x509_crt_init(&p->crt), 0);
        assert_int_equal(gnutls_x509_crt_set_version(p->crt, 3), 0);
        assert_int_equal(gnutls_x509_crt_set_serial(p->crt, ser, sizeof ser), 0);
        assert_int_equal(gnutls_x509_crt_set_activation_time(p->crt, now - 3600), 0);
        assert_int_equal(gnutls_x509_crt_set_expiration_time(p->crt, now + 86400), 0);
        assert_int_equal(gnutls_x509_crt_set_dn_by_oid(p->crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)), 0);
        assert_int_equal(gnutls_x509_crt_set_key(p->crt, p->key), 0);
        assert_int_equal(gnutls_x509_crt_get_key_id(p->crt, 0, id, &id_len), 0);
        assert_int_equal(gnutls_x509_crt_set_subject_key_id(p->crt, id, id_len), 0);
        if (kind == PKI_CA) {
                assert_int_equal(gnutls_x509_crt_set_basic_constraints(p->crt, 1, -1), 0);
                assert_int_equal(gnutls_x509_crt_set_key_usage(p->crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN),
                                 0);
        } else {
                static const unsigned char localhost[4] = { 127, 0, 0, 1 };

                assert_int_equal(gnutls_x509_crt_set_basic_constraints(p->crt, 0, -1), 0);
                assert_int_equal(gnutls_x509_crt_set_key_usage(p->crt, GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
                assert_int_equal(
                        gnutls_x509_crt_set_key_purpose_oid(
                                p->crt, kind == PKI_SERVER ? GNUTLS_KP_TLS_WWW_SERVER : GNUTLS_KP_TLS_WWW_CLIENT, 0),
                        0);
                if (kind == PKI_SERVER)
                        assert_int_equal(gnutls_x509_crt_set_subject_alt_name(p->crt, GNUTLS_SAN_IPADDRESS, localhost,
                                                                              sizeof localhost, GNUTLS_FSAN_APPEND),
                                         0);
                id_len = sizeof id;
                assert_int_equal(gnutls_x509_crt_get_subject_key_id(issuer->crt, id, &id_len, NULL), 0);
                assert_int_equal(gnutls_x509_crt_set_authority_key_id(p->crt, id, id_len), 0);
        }
        assert_int_equal(gnutls_x509_crt_sign2(p->crt, issuer ? issuer->crt : p->crt, issuer ? issuer->key : p->key,
                                               GNUTLS_DIG_SHA256, 0),
                         0);
}

static inline void pki_done(Pki *p) {
        gnutls_x509_crt_deinit(p->crt);
        gnutls_x509_privkey_deinit(p->key);
}

/* The certificate and the key in PEM, as a string the caller frees. */
static inline char *pki_pem_take(gnutls_datum_t *d) {
        char *s = strndup((const char *) d->data, d->size);

        assert_non_null(s);
        gnutls_free(d->data);
        return s;
}

static inline char *pki_crt_pem(const Pki *p) {
        gnutls_datum_t d;

        assert_int_equal(gnutls_x509_crt_export2(p->crt, GNUTLS_X509_FMT_PEM, &d), 0);
        return pki_pem_take(&d);
}

static inline char *pki_key_pem(const Pki *p) {
        gnutls_datum_t d;

        assert_int_equal(gnutls_x509_privkey_export2(p->key, GNUTLS_X509_FMT_PEM, &d), 0);
        return pki_pem_take(&d);
}

/* `text` into the file dir/name, created or truncated. */
static inline void pki_write_file(const char *dir, const char *name, const char *text) {
        char path[256];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

/* The certificate into dir/<name>.crt and the key into dir/<name>.key. */
static inline void pki_write(const char *dir, const char *name, const Pki *p) {
        char file[128], *pem;

        snprintf(file, sizeof file, "%s.crt", name);
        pem = pki_crt_pem(p);
        pki_write_file(dir, file, pem);
        free(pem);
        snprintf(file, sizeof file, "%s.key", name);
        pem = pki_key_pem(p);
        pki_write_file(dir, file, pem);
        free(pem);
}
