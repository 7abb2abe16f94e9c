/* routes.h — the application behind the /v1 API: the store, the job manager and the
 * route table whose handlers use them. main.c owns the process (config, server, signals)
 * and calls these hooks. */
#ifndef TRAIND_HTTP_ROUTES_H
#define TRAIND_HTTP_ROUTES_H

#include <stdio.h>

#include "http/http.h"
#include "traind/status.h"
#include "util/config.h"

typedef struct td_app td_app;

/* Opens the store under cfg->state_dir and starts the workers (which resume unfinished
 * jobs). */
td_status td_app_init(td_app **out, const td_config *cfg, td_error *err);
/* The /v1 routes; handlers take the td_app as their app argument. */
const td_route *td_app_routes(size_t *n);
/* The configuration the app was started with (the dashboard asks whether a token is set). */
const td_config *td_app_config(const td_app *app);
/* 1 when the store is open, the workers run and state_dir has room (store/reserve.h);
 * else 0 with the reason in reason (cap bytes). */
int td_app_ready(td_app *app, char *reason, size_t cap);
/* Prometheus lines: jobs by state, queue depth, samples trained. */
void td_app_metrics(td_app *app, FILE *out);
/* Stops the workers (running jobs checkpoint and stay resumable), closes the store,
 * frees. */
void td_app_shutdown(td_app *app);

#endif
