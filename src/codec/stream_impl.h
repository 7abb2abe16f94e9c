/* stream_impl.h — what the files of the streaming dataset parser share: its state
 * (td_dstream, the array builders), the errors, the lexers and finishers each file
 * provides. Not for other modules: they use stream_dataset.h.
 *
 *   stream_dataset.c  the errors, and the public entry points (feed, finish, destroy)
 *   num_parse.{h,c}   numbers
 *   array_build.c     the array builders (a dataset's arrays, an object's td_jarray)
 *   json_stream.c     the JSON lexer, the dataset's members, object bodies
 *   csv_stream.c      the CSV state machine */
#ifndef TRAIND_CODEC_STREAM_IMPL_H
#define TRAIND_CODEC_STREAM_IMPL_H

#include <stdint.h>
#include <string.h>

#include "codec/class_names.h"
#include "codec/json_util.h"
#include "codec/num_parse.h"
#include "codec/stream_dataset.h"

#define MAX_DEPTH 1000 /* nested containers, as cJSON allows */
#define KEY_CAP 256    /* bytes of a key kept (longer keys are unknown anyway) */
#define NAME_CAP (TD_DATASET_NAME_MAX + 1)
#define NEAR_MAX 16   /* bytes quoted after a malformed offset */
#define FIELD_CAP 256 /* CSV: bytes of a field kept (longer is not a number) */

enum { SH_ROWS, SH_VECTOR, SH_LABELS };
enum { B_X, B_LABELS, B_PROBS, B_PAIRS, B_PL, NB };
enum { K_X = B_X, K_Y = B_LABELS, K_YP = B_PROBS, K_PAIRS = B_PAIRS, K_PL = B_PL, K_NAME, K_SKIP };

/* One array member being read. */
typedef struct build {
    td_dataset_part *part;
    td_json_rule rule;
    int shape;
    char path[TD_JSON_PATH_MAX];
    int active;         /* the member's value was an array and values are wanted */
    int64_t i;          /* outer elements so far (the current row's index) */
    int64_t j;          /* elements of the current row so far */
    int64_t C;          /* row length, -1 until row 0 has ended */
    uint64_t start_off; /* where the array began, and row 0 (for the size */
    uint64_t row0_off;  /* estimates) */
    uint32_t *data;     /* accepted values (float or int32 bits) */
    size_t n, cap;
    int failed; /* the first error is known (below, or in part) */
    int ragged; /* counting row i's length for its message */
    int bad;    /* the first error is this element: */
    td_json_vkind bad_kind;
    double bad_value;
    int64_t bad_i, bad_j;
    /* generic (an object's array member, td_jarray): every number is kept as the float32
     * (float)d of its double d, booleans as 1 / 0, and the rule is applied when the array
     * is read (jarray_read). What a float does not tell of d is kept on the side: */
    int generic;
    td_json_vkind root_kind;  /* the member was not an array: its kind */
    td_json_vkind first_kind; /* the kind of element 0 */
    int64_t fb;               /* the first boolean (index into data; -1: none) */
    td_json_vkind fb_kind;
    int64_t ib, rb, nb; /* the first value with (double)f != d that is not an int32
                                 (ib), whose f is infinite (rb), or a negative d whose f
                                 is -0 (nb); -1: none */
    double ib_d, rb_d, nb_d;
    struct exc {
        int64_t k;
        int32_t v;
    } * exc; /* the ints (double)f does not hold */
    size_t nexc, capexc;
    int names_ok;     /* y: its elements may be class names (strings) */
    int name_pending; /* a name element has begun: its string pushes its index */
} build;

typedef enum {
    S_VALUE,
    S_VALUE_OR_CLOSE,
    S_KEY,
    S_KEY_OR_CLOSE,
    S_COLON,
    S_COMMA_OR_CLOSE,
    S_END
} lex_state;

typedef enum { TOK_NONE, TOK_BARE, TOK_STR } tok_kind;
typedef enum { STR_SKIP, STR_KEY, STR_NAME, STR_LABEL } str_role;

/* CSV states */
typedef enum { C_REC, C_FIELD, C_UNQUOTED, C_QUOTED, C_QUOTE, C_AFTER_QUOTE, C_CR } csv_state;

struct td_dstream {
    int csv;
    uint64_t size_hint;
    uint64_t fed;     /* bytes fed so far (before the current piece while it runs) */
    const char *base; /* the bytes being lexed, and the body offset of base[0] */
    uint64_t base_off;
    int bom_checked; /* the first 3 bytes (a UTF-8 BOM is skipped) are decided */
    char pre[3];     /* the first bytes, held until then */
    size_t pre_len;
    int done; /* decided: fatal_st / fatal_err (or a malformed offset) */
    td_status fatal_st;
    td_error fatal_err;
    int finished;

    /* malformed JSON: where, why, and the bytes there (collected across pieces) */
    int malformed;
    uint64_t bad_off;
    const char *bad_why;
    char near[NEAR_MAX];
    size_t near_len;

    /* ---- JSON lexer ---- */
    int started; /* the root value has begun */
    lex_state state;
    int depth;
    unsigned char ctype[MAX_DEPTH]; /* '[' or '{' per open container */
    tok_kind tok;
    uint64_t tok_off;
    size_t tok_len;
    char tok_buf[TOK_MAX + 1];
    /* string decoder */
    str_role srole;
    int str_key; /* the string is a key */
    int esc;     /* 0, 1 after '\', 2..5 hex digits read + 2, 6 want '\', 7 want 'u' */
    uint32_t esc_u, esc_hi;
    char *cap_buf; /* decoded bytes kept (key or name) */
    size_t cap_max, cap_len, cap_total;
    int cap_nul; /* a NUL was decoded: the C string ended */
    char key[KEY_CAP + 1];
    char name_buf[NAME_CAP + 1];
    char label_buf[TD_CLASS_NAME_MAX + 1];

    /* ---- dataset ---- */
    int root_obj;   /* the root is an object */
    int member;     /* K_* of the member being read */
    unsigned seen;  /* known keys seen (bit per K_*) */
    int keys_final; /* a key error is recorded: nothing else matters */
    td_dataset_parts parts;
    build b[NB];

    /* ---- CSV ---- */
    td_csv_opts opts;
    char *csv_name;
    csv_state cs;
    int64_t line, rec_line, field_line, col;
    int first_record, header_hint, labelled;
    int64_t ncols, N, D;
    int rec_ws;       /* spaces at the start of a line (blank, or the first field's) */
    uint64_t rec_off; /* where the first record began (for the size estimate) */
    char field[FIELD_CAP + 1];
    size_t flen;                     /* bytes kept in field (leading blanks are not kept) */
    int fover;                       /* a non-blank byte came past FIELD_CAP */
    char first_field[FIELD_CAP + 1]; /* the record's first field (label_column=first) */
    size_t first_len;
    int64_t lab_idx;              /* the label column (0-based) once known; -1 */
    char lab_text[FIELD_CAP + 1]; /* the label column's text in this record */
    size_t lab_len;
    int64_t pend_col, pend_line; /* a field that is not a number, which may be the label
                                    column (label_column=last, the first record): 0 none */
    char pend_text[FIELD_CAP + 1];
    int named; /* the labels are class names (the first row's is no number) */
    td_names names;
    char **hdr; /* the header's fields */
    int64_t nhdr;
    double *rec_d; /* the record's values */
    float *rec_f;
    unsigned char *rec_exact;
    int64_t *rec_line_of;
    size_t rec_n, rec_cap;
    build cx, cy; /* X and y arrays */

    const char *prefix; /* JSON dataset: field names of a nested dataset ("data") */

    /* ---- object mode (td_dstream_object) ---- */
    int objmode;
    const char *const *akeys, *const *skeys;
    const char *dkey;
    int nak;
    struct td_jarray *arr; /* one per array key */
    int om;                /* the member being read: OM_* or an index into arr */
    int data_seen, data_null;
    td_dstream *child; /* the inline dataset */
    td_sbuf small;     /* "{" and the small members' text */
    int small_members;
    int tap; /* bytes from tap_off on go to: TAP_SMALL, TAP_CHILD */
    uint64_t tap_off;
    uint64_t str_end; /* body offset just past the last string's closing quote */
    cJSON *members;
};

struct td_jarray {
    build b;
    td_dataset_part part;
    int seen;
};

enum { OM_NONE = -1, OM_SMALL = -2, OM_DATA = -3, OM_OTHER = -4 };
enum { TAP_NONE, TAP_SMALL, TAP_CHILD };

/* ---- errors (stream_dataset.c) ---- */

/* The outcome is decided: status st, td_error field and message (the first one counts). */
void td_ds_fatal(td_dstream *s, td_status st, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void td_ds_oom(td_dstream *s, const char *what);
/* Malformed JSON at body offset off; the bytes from off on are then collected by
 * td_ds_near_put (the caller gives those it holds). */
void td_ds_malformed(td_dstream *s, uint64_t off, const char *why);
void td_ds_near_put(td_dstream *s, const char *p, size_t n);

static inline uint64_t off_of(const td_dstream *s, const char *p)
{
    return s->base_off + (uint64_t)(p - s->base);
}

/* A zeroed parser with the JSON lexer's start state; NULL when out of memory. */
td_dstream *td_ds_new(uint64_t size_hint);
/* The first bytes of the body, held until they show a UTF-8 BOM or not (see
 * stream_dataset.c); returns where the piece's bytes go on, NULL while undecided. */
const char *td_ds_bom_check(td_dstream *s, const char *data, size_t len, int final);

/* ---- array builders (array_build.c) ---- */

void td_build_init(build *b, td_dataset_part *part, const char *name, int shape, int is_int,
                   unsigned flags, int64_t lo, int64_t hi);
/* Room for need values (0), or -1 out of memory (then s is decided). */
int td_build_reserve(td_dstream *s, build *b, size_t need);
/* Frees the values (b stays usable, empty). */
void td_build_drop(build *b);

static inline void build_push(td_dstream *s, build *b, uint32_t bits)
{
    if (b->n == b->cap && td_build_reserve(s, b, b->n + 1)) return;
    b->data[b->n++] = bits;
}

static inline void bits_of_float(uint32_t *bits, float f) { memcpy(bits, &f, sizeof f); }

/* A generic builder's element (i, j) of kind k (numbers with their text). */
void td_build_generic(td_dstream *s, build *b, int64_t i, int64_t j, td_json_vkind k, const num *nm,
                      const char *text, size_t tlen);
/* The string of a pending class-name element has ended (s->label_buf). */
void td_build_label_done(td_dstream *s, build *b);
/* A value at level L of b (0: the member itself); containers as they open. */
void td_build_value(td_dstream *s, build *b, int L, td_json_vkind k, const num *nm,
                    const char *text, size_t tlen, uint64_t off);
/* The container that was the value at level L ends at off (an array when is_array). */
void td_build_close(td_dstream *s, build *b, int L, int is_array, uint64_t off);
/* Turns a builder into its part (the element error formatted with final_rule, or with
 * its own rule when NULL). */
void td_build_finish(build *b, const td_json_rule *final_rule);

/* ---- the lexers and finishers (json_stream.c, csv_stream.c) ---- */

/* One piece p[0..end) of a JSON body (s->base, s->base_off set). */
void td_ds_lex_json(td_dstream *s, const char *p, const char *end);
/* The bytes an object body's member hands on (to the small text or the nested dataset)
 * up to body offset upto. */
void td_ds_tap_flush(td_dstream *s, uint64_t upto);
td_status td_ds_json_finish(td_dstream *s, td_dataset_buf *out, td_error *err);
/* One piece of a CSV body. */
void td_ds_lex_csv(td_dstream *s, const char *p, const char *end);
td_status td_ds_csv_finish(td_dstream *s, td_dataset_buf *out, td_error *err);

#endif
