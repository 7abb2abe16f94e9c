/* tls.h — the HTTPS certificate and key: read, checked, handed to the server.
 *
 * td_tls_load reads tls_cert_file and tls_key_file (PEM) whole and checks with GnuTLS
 * that they parse and that the key belongs to the certificate, so a bad pair is refused
 * at start with a message naming the file, not at the first handshake. */
#ifndef TRAIND_TLS_H
#define TRAIND_TLS_H

#include <stddef.h>

#include "traind/status.h"

typedef struct td_tls_pem {
    char *cert;   /* PEM text, malloc'd */
    char *key;    /* PEM text, malloc'd; wiped by td_tls_pem_free */
} td_tls_pem;

/* Reads and checks the pair. On error *out holds nothing to free. warn (may be NULL)
 * gets a note when the key file is readable by group or others ("" otherwise). */
td_status td_tls_load(td_tls_pem *out, const char *cert_file, const char *key_file,
                      char *warn, size_t warn_len, td_error *err);

void td_tls_pem_free(td_tls_pem *p);

#endif
