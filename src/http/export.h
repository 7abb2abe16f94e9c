/* export.h — data and models in other formats than JSON, at the HTTP edge:
 *
 *   GET  /v1/datasets/{id}/data?format=json|csv|npz   the dataset as stored (Accept:
 *        application/json, text/csv or application/zip choose it too; default json):
 *        json {"X","y"|"Y","pairs","pair_labels","name"}; csv X with y as the last
 *        column (only for an unlabelled or plainly labelled dataset); npz X.npy (float32),
 *        y.npy / pairs.npy / pair_labels.npy (int32), Y.npy (float32).
 *   GET  /v1/jobs/{id}/model?format=npz|c|onnx (Accept application/zip, text/x-c,
 *        application/onnx): onnx is the ONNX model of model_onnx.h; npz holds
 *        every tensor of the model under its JSON path ("W", "b", "layers.0.W",
 *        "weights", "means", "covariances" (M, E, E) | (M, E) | (M,); embed_gmm
 *        "network.layers.0.W", "gmm.means", "assignments"); c is the
 *        self-contained C99 header of model_c.h.
 *   POST /v1/jobs/{id}/predict with Content-Type application/x-npy (X as one .npy, any
 *        dtype the dataset reader takes, C or Fortran order) and/or Accept:
 *        application/zip (the outputs as an .npz, each under its JSON key).
 * The format words are exactly these; anything else is a 422 naming "format". */
#ifndef TRAIND_HTTP_EXPORT_H
#define TRAIND_HTTP_EXPORT_H

#include "http/http.h"
#include "store/store.h"
#include "traind/train.h"

/* GET /v1/datasets/{id}/data. */
void td_export_dataset(td_store *s, const td_req *req, td_resp *resp);

/* 1 when GET /v1/jobs/{id}/model asks for another format than JSON (then
 * td_export_model answers). */
int td_export_model_wanted(const td_req *req);
void td_export_model(const td_model *m, const td_req *req, td_resp *resp);
/* The same with the class names of the job's dataset (names[0..n_names), and as JSON
 * text; NULL for none): a C header gets traind_classes[], ONNX the metadata_props entry
 * "classes". (The .npz export does not carry them.) */
void td_export_model_named(const td_model *m, char *const *names, int64_t n_names,
                           const char *names_json, const td_req *req, td_resp *resp);

/* 1 when a predict request has an .npy body or wants an .npz back (then
 * td_export_predict answers); td_export_npy_body: 1 for an .npy body. */
int td_export_predict_wanted(const td_req *req);
int td_export_npy_body(const td_req *req);
/* X (N, D) float32 row-major from an .npy body (len bytes); D must be m->D. */
td_status td_export_npy_X(float **X, int64_t *N, const void *body, size_t len, const td_model *m,
                          td_error *err);
/* Answers predict for X (N, m->D), which it frees, as JSON or (Accept: application/zip)
 * .npz. */
void td_export_predict(const td_model *m, float *X, int64_t N, const td_req *req, td_resp *resp);

#endif
