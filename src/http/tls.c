/* tls.c — reading and checking the HTTPS certificate and key (see tls.h). */
#include "http/tls.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/text.h"

#define PEM_MAX (1u << 20)
#define CHAIN_MAX 16 /* certificates in tls_cert_file */

/* An installed pair; older ones stay linked (and alive) until td_tls_release. */
typedef struct creds {
    struct creds *older;
    gnutls_pcert_st pcert[CHAIN_MAX];
    unsigned n;
    gnutls_privkey_t key;
} creds;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static creds *g_cur; /* the newest, under g_mu */

static void creds_free(creds *c)
{
    for (unsigned i = 0; i < c->n; i++)
        gnutls_pcert_deinit(&c->pcert[i]);
    if (c->key) gnutls_privkey_deinit(c->key);
    free(c);
}

td_status td_tls_install(const td_tls_pem *pem, td_error *err)
{
    creds *c = calloc(1, sizeof *c);
    if (!c) return td_fail(err, TD_ENOMEM, "tls_cert_file", "out of memory");
    gnutls_datum_t cd = {(unsigned char *)pem->cert, (unsigned)strlen(pem->cert)};
    gnutls_datum_t kd = {(unsigned char *)pem->key, (unsigned)strlen(pem->key)};
    c->n = CHAIN_MAX;
    int rc = gnutls_pcert_list_import_x509_raw(c->pcert, &c->n, &cd, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        c->n = 0;
        creds_free(c);
        return td_fail(err, TD_EINVAL, "tls_cert_file",
                       "tls_cert_file: %s (at most %d "
                       "certificates)",
                       gnutls_strerror(rc), CHAIN_MAX);
    }
    if ((rc = gnutls_privkey_init(&c->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        creds_free(c);
        return td_fail(err, TD_EINVAL, "tls_key_file", "tls_key_file: %s", gnutls_strerror(rc));
    }
    pthread_mutex_lock(&g_mu);
    c->older = g_cur;
    g_cur = c;
    pthread_mutex_unlock(&g_mu);
    return TD_OK;
}

int td_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                    gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)session, (void)req_ca_dn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    pthread_mutex_lock(&g_mu);
    creds *c = g_cur;
    pthread_mutex_unlock(&g_mu);
    if (!c) return -1;
    *pcert = c->pcert;
    *pcert_length = c->n;
    *pkey = c->key;
    return 0;
}

void td_tls_release(void)
{
    pthread_mutex_lock(&g_mu);
    creds *c = g_cur;
    g_cur = NULL;
    pthread_mutex_unlock(&g_mu);
    while (c) {
        creds *o = c->older;
        creds_free(c);
        c = o;
    }
}

td_status td_tls_load(td_tls_pem *out, const char *cert_file, const char *key_file, char *warn,
                      size_t warn_len, td_error *err)
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
        st = td_fail(err, TD_EINVAL, "tls_cert_file",
                     "tls_cert_file %s / tls_key_file %s: "
                     "not a PEM certificate and its matching private key (%s)",
                     cert_file, key_file, gnutls_strerror(rc));
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
