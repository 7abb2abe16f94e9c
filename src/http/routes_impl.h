/* routes_impl.h — what routes.c shares with the other route files (routes_sweeps.c): the
 * application's parts, its answer helpers, and the job validation every job and every
 * sweep trial goes through. Not for other modules. */
#ifndef TRAIND_HTTP_ROUTES_IMPL_H
#define TRAIND_HTTP_ROUTES_IMPL_H

#include <stdint.h>

#include "http/http.h"
#include "http/routes.h"
#include "jobs/sweeps.h"
#include "store/reserve.h"
#include "store/store.h"

td_store *td_app_store(td_app *app);
td_sweeps *td_app_sweeps(td_app *app);
td_reserve *td_app_reserve(td_app *app);

/* Decodes a job's stored hyperparameter text against the loaded datasets (val may be
 * NULL) and checks it as td_trainer_create will, without building the trainer: the
 * validation of POST /v1/jobs. *K gets the outputs, *bytes the memory for admission. */
td_status td_app_check_job(td_app *app, const char *model, const char *hp_text,
                           const td_stored_dataset *train, const td_stored_dataset *val,
                           int64_t *K, uint64_t *bytes, td_error *err);

/* Answers a failure (400 for malformed JSON, else by status), a JSON body (taken; 500 when
 * NULL), and reads limit / after of a listing (-1: answered 422). */
void td_app_fail(td_resp *resp, td_status st, const td_error *err);
void td_app_json(td_resp *resp, int status, char *body);
int td_app_paging(const td_req *req, td_resp *resp, int *limit, const char **after);

/* The /v1/sweeps handlers (routes_sweeps.c). */
void td_h_sweep_create(void *app, const td_req *req, td_resp *resp);
void td_h_sweep_list(void *app, const td_req *req, td_resp *resp);
void td_h_sweep_get(void *app, const td_req *req, td_resp *resp);
void td_h_sweep_delete(void *app, const td_req *req, td_resp *resp);
void td_h_sweep_cancel(void *app, const td_req *req, td_resp *resp);

#endif
