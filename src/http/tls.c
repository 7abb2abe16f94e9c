/* tls.c — reading and checking the HTTPS certificate and key (see tls.h). */
#include "http/tls.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/text.h"

#define PEM_MAX (1u << 20)

td_status td_tls_load(td_tls_pem *out, const char *cert_file, const char *key_file,
                      char *warn, size_t warn_len, td_error *err)
{
    memset(out, 0, sizeof *out);
    if (warn && warn_len) warn[0] = '\0';
    size_t clen = 0, klen = 0;
    td_status st = td_read_small_file(cert_file, PEM_MAX, "tls_cert_file", &out->cert, &clen, err);
    if (st != TD_OK) return st;
    if ((st = td_read_small_file(key_file, PEM_MAX, "tls_key_file", &out->key, &klen, err))) {
        td_tls_pem_free(out);
        return st;
    }
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS) {
        td_tls_pem_free(out);
        return td_fail(err, TD_ENOMEM, "tls_cert_file", "out of memory");
    }
    gnutls_datum_t c = {(unsigned char *)out->cert, (unsigned)clen};
    gnutls_datum_t k = {(unsigned char *)out->key, (unsigned)klen};
    /* Parses both and checks that the key matches the certificate. */
    int rc = gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
    gnutls_certificate_free_credentials(cred);
    if (rc < 0) {
        st = td_fail(err, TD_EINVAL, "tls_cert_file", "tls_cert_file %s / tls_key_file %s: "
                     "not a PEM certificate and its matching private key (%s)", cert_file,
                     key_file, gnutls_strerror(rc));
        td_tls_pem_free(out);
        return st;
    }
    struct stat sb;
    if (warn && stat(key_file, &sb) == 0 && (sb.st_mode & 077))
        snprintf(warn, warn_len, "tls_key_file %s is readable by %s (mode %04o); chmod 600 it",
                 key_file, (sb.st_mode & 007) ? "everyone" : "its group",
                 (unsigned)(sb.st_mode & 07777));
    return TD_OK;
}

void td_tls_pem_free(td_tls_pem *p)
{
    free(p->cert);
    if (p->key) explicit_bzero(p->key, strlen(p->key));
    free(p->key);
    p->cert = p->key = NULL;
}
