/* json_job.h — JSON of jobs: stored hyperparameters back to engine structs, the job
 * object, latest metrics, and the loss history (columnar JSON and CSV). */
#ifndef TRAIND_CODEC_JSON_JOB_H
#define TRAIND_CODEC_JSON_JOB_H

#include <stdint.h>

#include "store/store.h"
#include "traind/dataset.h"
#include "traind/hparams.h"
#include "traind/status.h"
#include "traind/train.h"

/* The JSON text a job keeps as its hyperparameters: every value resolved
 * (td_json_hparams_object) plus, when given, the caller's "initial_weights" value as it
 * came (converted again at run time, when the dataset fixes the model's shape).
 * initial_weights may be NULL. Returns a malloc'd string or NULL (out of memory). */
char *td_job_hparams_text(const td_hparams *hp, const void *initial_weights_cjson);

/* Rebuilds td_hparams from a job's stored hyperparameters for dataset ds: parses the text,
 * checks every value (td_hparams_check), converts initial_weights to the model's layout.
 * *hp owns its memory (td_hparams_fini). */
td_status td_job_decode_hparams(td_hparams *hp, const char *model, const char *text,
                                const td_dataset *ds, td_error *err);

/* {"loss": 0.5, "val_loss": null, ...} for the columns names[0..n) minus epoch and
 * elapsed_s; NaN is null. malloc'd, or NULL when out of memory. */
char *td_json_metrics_string(const char *const *names, const double *v, int n);

/* The model's meta JSON (td_json_model_meta), malloc'd, or NULL. */
char *td_json_model_meta_string(const td_model *m);

/* The job object of SPEC §6 (malloc'd, NUL-terminated; *len may be NULL), or NULL. */
char *td_json_job(const td_job_row *row, size_t *len);
/* [{"code","message"},...] of a run's warnings; NULL when out of memory. */
char *td_json_warnings(const td_warning *w, int n);

/* The history as columnar JSON {"epoch":[...],"elapsed_s":[...],...} or as CSV with a
 * header line; malloc'd, or NULL. */
char *td_json_history(const td_history *h, size_t *len);
char *td_csv_history(const td_history *h, size_t *len);

#endif
