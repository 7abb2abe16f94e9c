/* tls.h — the HTTPS certificate and key: read, checked, handed to the server.
 *
 * td_tls_load reads tls_cert_file and tls_key_file (PEM) whole and checks with GnuTLS
 * that they parse and that the key belongs to the certificate, so a bad pair is refused
 * at start (and at a reload) with a message naming the file, not at the first handshake.
 *
 * The server does not give libmicrohttpd the pair itself but td_tls_retrieve, GnuTLS's
 * certificate callback, which answers every handshake with the pair last installed by
 * td_tls_install. So a SIGHUP can install a renewed certificate: handshakes from then on
 * use it, connections already up keep theirs. Installed pairs are process-wide (one
 * HTTPS server per process) and all kept until td_tls_release, since a handshake may
 * still be using an older one; a reload adds a few KiB. */
#ifndef TRAIND_TLS_H
#define TRAIND_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stddef.h>

#include "traind/status.h"

typedef struct td_tls_pem {
    char *cert; /* PEM text, malloc'd */
    char *key;  /* PEM text, malloc'd; wiped by td_tls_pem_free */
} td_tls_pem;

/* Reads and checks the pair. On error *out holds nothing to free. warn (may be NULL)
 * gets a note when the key file is readable by group or others ("" otherwise). */
td_status td_tls_load(td_tls_pem *out, const char *cert_file, const char *key_file, char *warn,
                      size_t warn_len, td_error *err);

void td_tls_pem_free(td_tls_pem *p);

/* Makes pem (checked by td_tls_load) the pair of every handshake from now on. */
td_status td_tls_install(const td_tls_pem *pem, td_error *err);

/* GnuTLS's gnutls_certificate_retrieve_function2, for MHD_OPTION_HTTPS_CERT_CALLBACK:
 * the installed pair (-1 when none is). */
int td_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                    gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey);

/* Frees every installed pair (after the server stopped). */
void td_tls_release(void);

#endif
