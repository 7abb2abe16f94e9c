/* stream_dataset.c — dataset bodies parsed as they arrive (contracts in stream_dataset.h).
 *
 * JSON. A byte-level lexer keeps the syntax (a stack of open containers and what may come
 * next) and hands each value to the dataset logic by depth: the root object (depth 0),
 * its members (depth 1: "X", "y", ...), and inside an array member the builders'
 * levels (L = depth - 1: 0 the member, 1 its elements, 2 the elements of a row). A
 * token cut by the end of a piece is kept in tok[] (numbers and literals, at most
 * TOK_MAX bytes) or in the string decoder's state, and finished with the next piece;
 * a number wholly inside a piece is converted in place. Inside a row of numbers the
 * lexer runs a tight loop (number, comma, number, ...) that leaves at anything unusual,
 * to the general code, which handles every case.
 *
 * Each array member has a builder: it applies the tree readers' checks in the same
 * order (json_util.c read_matrix / read_vector), keeps the first error of its array, and
 * appends accepted values to its array. pairs are read as int32 and checked against
 * [0, N-1] once X's N is known (td_dstream_finish), which gives the same first error as
 * reading them after X. The checks across arrays are td_dataset_parts_finish's.
 *
 * CSV. A state machine over records and fields (quoted, unquoted, CR/LF), keeping the
 * current record's values; each record is checked as td_csv_dataset_parse checks it,
 * and its values are appended to X and y.
 *
 * Objects (td_dstream_object: loss, predict and job bodies). The same lexer; the root
 * object's members go by key to a generic builder (numbers kept as float32 with what the
 * float does not tell on the side, the rule applied when the caller reads the array:
 * jarray_read), to a nested dataset parser (the bytes of the member's value are fed to
 * it as they are lexed), or into the small members' JSON text.
 */
#include "codec/stream_dataset.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/class_names.h"
#include "traind/hparams.h"
#include "codec/json_util.h"

#define TOK_MAX 4096            /* bytes of a number or literal */
#define MAX_DEPTH 1000          /* nested containers, as cJSON allows */
#define KEY_CAP 256             /* bytes of a key kept (longer keys are unknown anyway) */
#define NAME_CAP (TD_DATASET_NAME_MAX + 1)
#define NEAR_MAX 16             /* bytes quoted after a malformed offset */
#define FIELD_CAP 256           /* CSV: bytes of a field kept (longer is not a number) */

/* ================================================================ numbers ======== */

/* A decimal number: value = (neg ? -1 : 1) * m * 10^e10, up to the dropped digits. */
typedef struct num {
    uint64_t m;         /* the first 19 significant digits */
    int64_t e10;
    int neg;
    int truncated;      /* a nonzero digit past the 19th was dropped */
    int plain;          /* digits only: no fraction, no exponent */
} num;

enum { SCAN_OK, SCAN_MORE, SCAN_BAD };

static inline int is_digit(unsigned char c)
{
    return (unsigned)(c - '0') < 10u;
}

/* Scans a JSON number (RFC 8259 grammar) at p. SCAN_OK: *stop is the first byte after
 * it. SCAN_MORE: the piece ended where the number may go on (only when !final; with
 * final, end is the end of the text). SCAN_BAD: *stop is the first byte that breaks the
 * grammar. */
static inline int scan_number(const char *p, const char *end, int final, num *n,
                              const char **stop)
{
    const char *q = p;
    uint64_t m = 0;
    int nd = 0, trunc = 0;
    int64_t e10 = 0;
    n->neg = 0;
    n->plain = 1;
    if (q < end && *q == '-') {
        n->neg = 1;
        q++;
    }
    if (q == end)
        goto more;
    if (*q == '0') {
        q++;
    } else if (is_digit((unsigned char)*q)) {
        /* up to 19 digits go straight in: m < 10^19 < 2^64 */
        const char *lim = end - q > 19 ? q + 19 : end;
        while (q < lim && is_digit((unsigned char)*q))
            m = m * 10 + (unsigned)(*q++ - '0');
        nd = (int)(q - p - n->neg);
        while (q < end && is_digit((unsigned char)*q)) {
            trunc |= *q != '0';
            e10++;
            q++;
        }
    } else {
        *stop = q;
        return SCAN_BAD;
    }
    if (q == end)
        goto more_or_done;
    if (*q == '.') {
        n->plain = 0;
        q++;
        if (q == end)
            goto more_or_bad;
        if (!is_digit((unsigned char)*q)) {
            *stop = q;
            return SCAN_BAD;
        }
        if (m == 0) { /* leading zeros of a fraction are not significant */
            const char *z = q;
            while (q < end && *q == '0')
                q++;
            e10 -= q - z;
        }
        while (q < end && is_digit((unsigned char)*q)) {
            if (nd < 19) {
                m = m * 10 + (unsigned)(*q - '0');
                nd++;
                e10--;
            } else {
                trunc |= *q != '0';
            }
            q++;
        }
        if (q == end)
            goto more_or_done;
    }
    if (*q == 'e' || *q == 'E') {
        n->plain = 0;
        q++;
        if (q == end)
            goto more_or_bad;
        int eneg = 0;
        if (*q == '+' || *q == '-') {
            eneg = *q == '-';
            q++;
            if (q == end)
                goto more_or_bad;
        }
        if (!is_digit((unsigned char)*q)) {
            *stop = q;
            return SCAN_BAD;
        }
        int64_t ex = 0;
        while (q < end && is_digit((unsigned char)*q)) {
            if (ex < 100000000)
                ex = ex * 10 + (*q - '0');
            q++;
        }
        e10 += eneg ? -ex : ex;
        if (q == end)
            goto more_or_done;
    }
    n->m = m;
    n->e10 = e10;
    n->truncated = trunc;
    *stop = q;
    return SCAN_OK;
more_or_done:
    if (!final)
        goto more;
    n->m = m;
    n->e10 = e10;
    n->truncated = trunc;
    *stop = q;
    return SCAN_OK;
more_or_bad:
    if (!final)
        goto more;
    *stop = q;
    return SCAN_BAD;
more:
    *stop = end;
    return SCAN_MORE;
}

static const double P10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The correctly rounded double when one exact operation gives it (Clinger's fast path,
 * or an integer of at most 19 digits): 1, else 0. */
static inline int num_exact(const num *n, double *d)
{
    if (n->truncated)
        return 0;
    double v;
    if (n->m == 0) {
        v = 0.0;
    } else if (n->e10 == 0) {
        v = (double)n->m; /* one correctly rounded conversion */
    } else if (n->m <= (1ull << 53) && n->e10 > 0 && n->e10 <= 22) {
        v = (double)n->m * P10[n->e10];
    } else if (n->m <= (1ull << 53) && n->e10 < 0 && n->e10 >= -22) {
        v = (double)n->m / P10[-n->e10];
    } else {
        return 0;
    }
    *d = n->neg ? -v : v;
    return 1;
}

/* A double within 5 ulps of the value (3 roundings at most, plus the dropped digits
 * under 1e-18 relative), or 0 when the exponent is out of reach. */
static inline int num_approx(const num *n, double *d)
{
    int64_t e = n->e10;
    if (e < -44 || e > 44)
        return 0;
    double v = (double)n->m;
    if (e > 22)
        v = v * P10[e - 22] * 1e22;
    else if (e >= 0)
        v *= P10[e];
    else if (e >= -22)
        v /= P10[-e];
    else
        v = v / 1e22 / P10[-e - 22];
    *d = n->neg ? -v : v;
    return 1;
}

/* strtod of text[0..len) (not NUL-terminated); len <= TOK_MAX. */
static double strtod_n(const char *text, size_t len)
{
    char buf[TOK_MAX + 1];
    if (len > TOK_MAX)
        len = TOK_MAX;
    memcpy(buf, text, len);
    buf[len] = '\0';
    return strtod(buf, NULL);
}

/* float32 of a scanned number as (float)strtod; *d the double (exact unless the float
 * is safely decided from an approximation, then within a few ulps with |d| < 2^127). */
static inline float num_f32(const num *n, const char *text, size_t len, double *d)
{
    double v;
    if (num_exact(n, &v)) {
        *d = v;
        return (float)v;
    }
    if (num_approx(n, &v)) {
        double a = fabs(v);
        if (a >= 0x1p-125 && a < 0x1p127) {
            uint64_t bits;
            memcpy(&bits, &v, sizeof bits);
            uint32_t low = (uint32_t)(bits & 0x1fffffffu); /* the bits float32 drops */
            if (low > 0x10000000u + 8 || low < 0x10000000u - 8) {
                *d = v;
                return (float)v;
            }
        }
    }
    v = strtod_n(text, len);
    *d = v;
    return (float)v;
}

/* The double strtod reads (exactly). */
static inline double num_f64(const num *n, const char *text, size_t len)
{
    double v;
    if (num_exact(n, &v))
        return v;
    return strtod_n(text, len);
}

int td_parse_f32(const char *text, size_t n, float *out, double *d)
{
    num nm;
    const char *stop;
    if (n == 0 || n > TOK_MAX || scan_number(text, text + n, 1, &nm, &stop) != SCAN_OK ||
        stop != text + n)
        return -1;
    double v;
    *out = num_f32(&nm, text, n, &v);
    if (d)
        *d = v;
    return 0;
}

/* ================================================================ the parser ===== */

enum { SH_ROWS, SH_VECTOR, SH_LABELS };
enum { B_X, B_LABELS, B_PROBS, B_PAIRS, B_PL, NB };
enum { K_X = B_X, K_Y = B_LABELS, K_YP = B_PROBS, K_PAIRS = B_PAIRS, K_PL = B_PL, K_NAME,
       K_SKIP };

/* One array member being read. */
typedef struct build {
    td_dataset_part *part;
    td_json_rule rule;
    int shape;
    char path[TD_JSON_PATH_MAX];
    int active;              /* the member's value was an array and values are wanted */
    int64_t i;               /* outer elements so far (the current row's index) */
    int64_t j;               /* elements of the current row so far */
    int64_t C;               /* row length, -1 until row 0 has ended */
    uint64_t start_off;      /* where the array began, and row 0 (for the size */
    uint64_t row0_off;       /* estimates) */
    uint32_t *data;          /* accepted values (float or int32 bits) */
    size_t n, cap;
    int failed;              /* the first error is known (below, or in part) */
    int ragged;              /* counting row i's length for its message */
    int bad;                 /* the first error is this element: */
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
    int64_t ib, rb, nb;       /* the first value with (double)f != d that is not an int32
                                 (ib), whose f is infinite (rb), or a negative d whose f
                                 is -0 (nb); -1: none */
    double ib_d, rb_d, nb_d;
    struct exc { int64_t k; int32_t v; } *exc; /* the ints (double)f does not hold */
    size_t nexc, capexc;
    int names_ok;            /* y: its elements may be class names (strings) */
    int name_pending;        /* a name element has begun: its string pushes its index */
} build;

typedef enum { S_VALUE, S_VALUE_OR_CLOSE, S_KEY, S_KEY_OR_CLOSE, S_COLON, S_COMMA_OR_CLOSE,
               S_END } lex_state;

typedef enum { TOK_NONE, TOK_BARE, TOK_STR } tok_kind;
typedef enum { STR_SKIP, STR_KEY, STR_NAME, STR_LABEL } str_role;

/* CSV states */
typedef enum { C_REC, C_FIELD, C_UNQUOTED, C_QUOTED, C_QUOTE, C_AFTER_QUOTE, C_CR } csv_state;

struct td_dstream {
    int csv;
    uint64_t size_hint;
    uint64_t fed;            /* bytes fed so far (before the current piece while it runs) */
    const char *base;        /* the bytes being lexed, and the body offset of base[0] */
    uint64_t base_off;
    int bom_checked;         /* the first 3 bytes (a UTF-8 BOM is skipped) are decided */
    char pre[3];             /* the first bytes, held until then */
    size_t pre_len;
    int done;                /* decided: fatal_st / fatal_err (or a malformed offset) */
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
    int started;             /* the root value has begun */
    lex_state state;
    int depth;
    unsigned char ctype[MAX_DEPTH]; /* '[' or '{' per open container */
    tok_kind tok;
    uint64_t tok_off;
    size_t tok_len;
    char tok_buf[TOK_MAX + 1];
    /* string decoder */
    str_role srole;
    int str_key;             /* the string is a key */
    int esc;                 /* 0, 1 after '\', 2..5 hex digits read + 2, 6 want '\', 7 want 'u' */
    uint32_t esc_u, esc_hi;
    char *cap_buf;           /* decoded bytes kept (key or name) */
    size_t cap_max, cap_len, cap_total;
    int cap_nul;             /* a NUL was decoded: the C string ended */
    char key[KEY_CAP + 1];
    char name_buf[NAME_CAP + 1];
    char label_buf[TD_CLASS_NAME_MAX + 1];

    /* ---- dataset ---- */
    int root_obj;            /* the root is an object */
    int member;              /* K_* of the member being read */
    unsigned seen;           /* known keys seen (bit per K_*) */
    int keys_final;          /* a key error is recorded: nothing else matters */
    td_dataset_parts parts;
    build b[NB];

    /* ---- CSV ---- */
    td_csv_opts opts;
    char *csv_name;
    csv_state cs;
    int64_t line, rec_line, field_line, col;
    int first_record, header_hint, labelled;
    int64_t ncols, N, D;
    int rec_ws;              /* spaces at the start of a line (blank, or the first field's) */
    uint64_t rec_off;        /* where the first record began (for the size estimate) */
    char field[FIELD_CAP + 1];
    size_t flen;             /* bytes kept in field (leading blanks are not kept) */
    int fover;               /* a non-blank byte came past FIELD_CAP */
    char first_field[FIELD_CAP + 1]; /* the record's first field (label_column=first) */
    size_t first_len;
    int64_t lab_idx;         /* the label column (0-based) once known; -1 */
    char lab_text[FIELD_CAP + 1]; /* the label column's text in this record */
    size_t lab_len;
    int64_t pend_col, pend_line; /* a field that is not a number, which may be the label
                                    column (label_column=last, the first record): 0 none */
    char pend_text[FIELD_CAP + 1];
    int named;               /* the labels are class names (the first row's is no number) */
    td_names names;
    char **hdr;              /* the header's fields */
    int64_t nhdr;
    double *rec_d;           /* the record's values */
    float *rec_f;
    unsigned char *rec_exact;
    int64_t *rec_line_of;
    size_t rec_n, rec_cap;
    build cx, cy;            /* X and y arrays */

    const char *prefix;      /* JSON dataset: field names of a nested dataset ("data") */

    /* ---- object mode (td_dstream_object) ---- */
    int objmode;
    const char *const *akeys, *const *skeys;
    const char *dkey;
    int nak;
    struct td_jarray *arr;   /* one per array key */
    int om;                  /* the member being read: OM_* or an index into arr */
    int data_seen, data_null;
    td_dstream *child;       /* the inline dataset */
    td_sbuf small;           /* "{" and the small members' text */
    int small_members;
    int tap;                 /* bytes from tap_off on go to: TAP_SMALL, TAP_CHILD */
    uint64_t tap_off;
    uint64_t str_end;        /* body offset just past the last string's closing quote */
    cJSON *members;
};

struct td_jarray {
    build b;
    td_dataset_part part;
    int seen;
};

enum { OM_NONE = -1, OM_SMALL = -2, OM_DATA = -3, OM_OTHER = -4 };
enum { TAP_NONE, TAP_SMALL, TAP_CHILD };

/* ---------------------------------------------------------------- errors -------- */

static void fatal(td_dstream *s, td_status st, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fatal(td_dstream *s, td_status st, const char *field, const char *fmt, ...)
{
    if (s->done)
        return;
    s->done = 1;
    s->fatal_st = st;
    va_list ap;
    va_start(ap, fmt);
    char msg[sizeof s->fatal_err.message];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    td_fail(&s->fatal_err, st, field, "%s", msg);
}

static void oom(td_dstream *s, const char *what)
{
    fatal(s, TD_ENOMEM, what, "out of memory reading %s", what);
}

/* Malformed JSON at body offset off; the bytes from off on are then collected by
 * near_put (the caller gives those it holds). */
static void malformed(td_dstream *s, uint64_t off, const char *why)
{
    if (s->done)
        return;
    s->done = 1;
    s->malformed = 1;
    s->bad_off = off;
    s->bad_why = why;
    s->near_len = 0;
}

static void near_put(td_dstream *s, const char *p, size_t n)
{
    if (!s->malformed)
        return;
    size_t room = NEAR_MAX - s->near_len;
    if (n > room)
        n = room;
    memcpy(s->near + s->near_len, p, n);
    s->near_len += n;
}

static uint64_t off_of(const td_dstream *s, const char *p)
{
    return s->base_off + (uint64_t)(p - s->base);
}

/* ---------------------------------------------------------------- builders ------ */

static void build_init(build *b, td_dataset_part *part, const char *name, int shape, int is_int,
                       unsigned flags, int64_t lo, int64_t hi)
{
    memset(b, 0, sizeof *b);
    b->part = part;
    b->shape = shape;
    b->rule.is_int = is_int;
    b->rule.flags = flags;
    b->rule.lo = lo;
    b->rule.hi = hi;
    b->C = -1;
    snprintf(b->path, sizeof b->path, "%s", name);
    part->row0_len = -1;
    part->cols = 1;
}

/* Room for need values. Past the first few thousand, the array grows to what the rest
 * of the body can hold at the density seen so far, plus 10% (at least 1/8 more): a big
 * array is moved (copied, by realloc) once or twice, not log2(N) times. */
static int build_reserve(td_dstream *s, build *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap * 2 : 256;
    uint64_t at = s->base_off; /* within a piece of where we are */
    if (b->n >= 4096 && s->size_hint > at && at > b->start_off) {
        double more = (double)b->n / (double)(at - b->start_off) * (double)(s->size_hint - at);
        double est = (double)b->n + more * 1.1 + 4096;
        size_t step = b->cap + b->cap / 8;
        if (est < (double)cap)
            cap = est > (double)step ? (size_t)est : step;
    }
    if (cap < need)
        cap = need;
    uint32_t *p = realloc(b->data, cap * sizeof *p);
    if (!p) {
        oom(s, b->path);
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline void build_push(td_dstream *s, build *b, uint32_t bits)
{
    if (b->n == b->cap && build_reserve(s, b, b->n + 1))
        return;
    b->data[b->n++] = bits;
}

static void build_drop(build *b)
{
    free(b->data);
    b->data = NULL;
    b->n = b->cap = 0;
    free(b->exc);
    b->exc = NULL;
    b->nexc = b->capexc = 0;
}

/* Row 0 of a matrix has ended at off: reserve what the rest of the body can hold. */
static void build_estimate(td_dstream *s, build *b, uint64_t off)
{
    uint64_t row_bytes = off - b->row0_off;
    if (!s->size_hint || s->size_hint <= off || row_bytes == 0 || b->C <= 0)
        return;
    uint64_t rows = (s->size_hint - off) / row_bytes * 11 / 10 + 2; /* 10% to spare */
    uint64_t want = rows * (uint64_t)b->C;
    uint64_t most = s->size_hint / 2 + (uint64_t)b->C; /* a value takes 2 bytes at least */
    if (want > most)
        want = most;
    if (want > b->cap && want < SIZE_MAX / sizeof(uint32_t))
        build_reserve(s, b, (size_t)want);
}

static void bits_of_float(uint32_t *bits, float f)
{
    memcpy(bits, &f, sizeof f);
}

/* A generic builder's element k (index into data) of kind k. */
static void generic_elem(td_dstream *s, build *b, int64_t i, int64_t j, td_json_vkind k,
                         const num *nm, const char *text, size_t tlen)
{
    int64_t at = (int64_t)b->n;
    uint32_t bits;
    if (k == TD_JV_TRUE || k == TD_JV_FALSE) {
        if (b->fb < 0) {
            b->fb = at;
            b->fb_kind = k;
        }
        bits_of_float(&bits, k == TD_JV_TRUE ? 1.0f : 0.0f);
        build_push(s, b, bits);
        return;
    }
    if (k != TD_JV_NUMBER) {
        b->failed = b->bad = 1;
        b->bad_kind = k;
        b->bad_value = 0;
        b->bad_i = i;
        b->bad_j = j;
        return;
    }
    double d = num_f64(nm, text, tlen);
    float f = (float)d;
    if ((double)f != d) {
        if (d == floor(d) && d >= INT32_MIN && d <= INT32_MAX) {
            if (b->nexc == b->capexc) {
                size_t cap = b->capexc ? b->capexc * 2 : 16;
                struct exc *e = realloc(b->exc, cap * sizeof *e);
                if (!e) {
                    oom(s, b->path);
                    return;
                }
                b->exc = e;
                b->capexc = cap;
            }
            b->exc[b->nexc].k = at;
            b->exc[b->nexc++].v = (int32_t)d;
        } else if (b->ib < 0) {
            b->ib = at;
            b->ib_d = d;
        }
        if (isinf(f) && b->rb < 0) {
            b->rb = at;
            b->rb_d = d;
        }
        if (f == 0 && d < 0 && b->nb < 0) {
            b->nb = at;
            b->nb_d = d;
        }
    }
    bits_of_float(&bits, f);
    build_push(s, b, bits);
}

/* One element (kind k; numbers with their text) at (i, j) (j < 0 for a vector). */
static void build_elem(td_dstream *s, build *b, int64_t i, int64_t j, td_json_vkind k,
                       const num *nm, const char *text, size_t tlen)
{
    double d = 0;
    if (b->generic) {
        generic_elem(s, b, i, j, k, nm, text, tlen);
        return;
    }
    if (k == TD_JV_NUMBER) {
        uint32_t bits;
        if (!b->rule.is_int) {
            float f = num_f32(nm, text, tlen, &d);
            if (td_json_rule_ok(&b->rule, d)) {
                bits_of_float(&bits, f);
                build_push(s, b, bits);
                return;
            }
        } else {
            d = num_f64(nm, text, tlen);
            if (td_json_rule_ok(&b->rule, d)) {
                int32_t v = (int32_t)d;
                memcpy(&bits, &v, sizeof bits);
                build_push(s, b, bits);
                return;
            }
        }
    } else if (b->rule.is_int && (b->rule.flags & TD_JSON_BOOLS) &&
               (k == TD_JV_TRUE || k == TD_JV_FALSE)) {
        int32_t v = k == TD_JV_TRUE;
        if (v >= b->rule.lo && v <= b->rule.hi) {
            uint32_t bits;
            memcpy(&bits, &v, sizeof bits);
            build_push(s, b, bits);
            return;
        }
    }
    b->failed = b->bad = 1;
    b->bad_kind = k;
    b->bad_value = d;
    b->bad_i = i;
    b->bad_j = j;
}

/* Element i of a y given as class names (the first element was a string): a string is
 * taken when it ends (label_done), anything else is refused. */
static void name_elem(td_dstream *s, build *b, td_json_vkind k)
{
    td_dataset_part *part = b->part;
    if (!part->names && !(part->names = calloc(1, sizeof *part->names))) {
        oom(s, b->path);
        return;
    }
    if (k == TD_JV_STRING) {
        b->name_pending = 1;
        return;
    }
    char path[TD_JSON_PATH_MAX];
    td_json_index_path(path, b->path, b->i, -1);
    part->st = td_fail(&part->err, TD_EINVAL, path, "%s must be a class name (a string), as "
                       "%s[0] is; got %s", path, b->path, td_json_kind_name(k));
    b->failed = 1;
}

/* The string of a pending name element has ended (s->label_buf, s->cap_len/total). */
static void label_done(td_dstream *s, build *b)
{
    td_dataset_part *part = b->part;
    b->name_pending = 0;
    if (b->failed)
        return;
    char path[TD_JSON_PATH_MAX];
    td_json_index_path(path, b->path, b->i - 1, -1);
    if (s->cap_total == 0 || s->cap_total > TD_CLASS_NAME_MAX || s->cap_nul) {
        part->st = td_fail(&part->err, TD_EINVAL, path, "%s: a class name must be 1 to %d "
                           "bytes of text without NUL", path, TD_CLASS_NAME_MAX);
        b->failed = 1;
        return;
    }
    int32_t idx = td_names_add(part->names, s->label_buf, s->cap_len);
    if (idx == -1) {
        oom(s, b->path);
        return;
    }
    if (idx == -2) {
        part->st = td_fail(&part->err, TD_EINVAL, path, "%s: more than %d distinct class "
                           "names", path, TD_MAX_CLASSES);
        b->failed = 1;
        return;
    }
    uint32_t bits;
    memcpy(&bits, &idx, sizeof bits);
    build_push(s, b, bits);
}

/* A value at level L of builder b (L 0: the member itself). A container is reported
 * when it opens, as kind TD_JV_ARRAY / TD_JV_OBJECT. */
static void build_value(td_dstream *s, build *b, int L, td_json_vkind k, const num *nm,
                        const char *text, size_t tlen, uint64_t off)
{
    td_dataset_part *part = b->part;
    if (L == 0) {
        if (k == TD_JV_ARRAY) {
            b->active = 1;
            b->start_off = off;
            return;
        }
        if (b->generic) { /* the reader names it as a matrix or a vector */
            b->root_kind = k;
            b->failed = 1;
            return;
        }
        part->st = b->shape == SH_ROWS ? td_json_fail_not_rows(b->path, k, &part->err)
                                       : td_json_fail_not_numbers(b->path, k, &part->err);
        b->failed = 1;
        return;
    }
    if (!b->active)
        return;
    if (L == 1 && b->i == 0)
        b->first_kind = k;
    if (b->shape == SH_LABELS && L == 1 && b->i == 0) { /* the first element decides */
        if (k == TD_JV_ARRAY) {
            b->shape = SH_ROWS;
            part->grouped = 1;
        } else {
            b->shape = SH_VECTOR;
        }
    }
    if (b->shape == SH_VECTOR) {
        if (L == 1) {
            if (!b->failed && b->names_ok && (part->names || (b->i == 0 && k == TD_JV_STRING)))
                name_elem(s, b, k);
            else if (!b->failed)
                build_elem(s, b, b->i, -1, k, nm, text, tlen);
            b->i++;
        }
        return;
    }
    /* rows */
    if (L == 1) {
        if (k == TD_JV_ARRAY) {
            b->j = 0;
            if (b->i == 0)
                b->row0_off = off;
            return;
        }
        if (!b->failed) {
            if (b->i == 0) {
                part->st = td_json_fail_first_not_row(b->path, k, &part->err);
            } else {
                char rpath[TD_JSON_PATH_MAX];
                td_json_index_path(rpath, b->path, b->i, -1);
                part->st = td_json_fail_not_numbers(rpath, k, &part->err);
            }
            b->failed = 1;
        }
        b->i++;
        return;
    }
    if (L == 2) {
        if (!b->failed) {
            if (b->i > 0 && b->j >= b->C)
                b->failed = b->ragged = 1; /* its length is told when it ends */
            else
                build_elem(s, b, b->i, b->j, k, nm, text, tlen);
        }
        b->j++;
    }
}

/* The container that was the value at level L ends at off (an array when is_array). */
static void build_close(td_dstream *s, build *b, int L, int is_array, uint64_t off)
{
    td_dataset_part *part = b->part;
    if (!b->active)
        return;
    if (L == 0) {
        if (!b->failed && b->i == 0) {
            part->st = td_json_fail_empty(b->path, &part->err);
            b->failed = 1;
        }
        part->rows = b->i;
        return;
    }
    if (L != 1 || b->shape != SH_ROWS || !is_array) /* other elements counted as they began */
        return;
    if (b->i == 0) {
        part->row0_len = b->j;
        if (!b->failed) {
            b->C = b->j;
            if (b->C == 0) {
                part->st = td_json_fail_first_row_empty(b->path, &part->err);
                b->failed = 1;
            } else {
                build_estimate(s, b, off);
            }
        }
    } else if (b->ragged || (!b->failed && b->j != b->C)) {
        part->st = td_json_fail_ragged(b->path, b->i, b->j, b->C, &part->err);
        b->ragged = 0;
        b->failed = 1;
    }
    b->i++;
}

/* Turns a builder into its part (the element error formatted with the final rule). */
static void build_finish(build *b, const td_json_rule *final_rule)
{
    td_dataset_part *part = b->part;
    if (!part->present) {
        build_drop(b);
        return;
    }
    if (b->bad && !part->st) {
        char path[TD_JSON_PATH_MAX];
        td_json_index_path(path, b->path, b->bad_i, b->bad_j);
        part->st = td_json_elem_fail(final_rule ? final_rule : &b->rule, b->bad_kind,
                                     b->bad_value, path, &part->err);
    }
    if (b->shape == SH_ROWS)
        part->cols = b->C > 0 ? b->C : 0;
    else
        part->cols = 1;
    if (part->st) {
        build_drop(b);
        return;
    }
    if (b->cap > b->n) { /* give back the reserve */
        uint32_t *p = realloc(b->data, (b->n ? b->n : 1) * sizeof *p);
        if (p)
            b->data = p;
    }
    part->data = b->data;
    b->data = NULL;
}

/* ---------------------------------------------------------------- JSON: values --- */

static const char *const KEYS[] = {"X", "y", "Y", "pairs", "pair_labels", "name", NULL};

/* A key error wins over every value: stop reading values. */
static void key_error(td_dstream *s)
{
    s->keys_final = 1;
    for (int k = 0; k < NB; k++)
        build_drop(&s->b[k]);
}

/* X's first error is known: its values are of no more use. */
static void x_failed(td_dstream *s)
{
    if (s->b[B_X].failed && s->b[B_X].data)
        build_drop(&s->b[B_X]);
}

static void obj_value(td_dstream *s, int d, td_json_vkind k, const num *nm, const char *text,
                      size_t tlen, uint64_t off);
static void obj_close(td_dstream *s, int d, int is_array, uint64_t off);
static void obj_key(td_dstream *s);
static void obj_member_begin(td_dstream *s, uint64_t off);
static void obj_member_end(td_dstream *s, uint64_t off);

/* A value of kind k begins at depth d (containers: as they open). */
static void on_value(td_dstream *s, int d, td_json_vkind k, const num *nm, const char *text,
                     size_t tlen, uint64_t off)
{
    if (s->objmode) {
        obj_value(s, d, k, nm, text, tlen, off);
        return;
    }
    if (d == 0) {
        if (k == TD_JV_OBJECT) {
            s->root_obj = 1;
        } else {
            s->parts.key_st = td_json_fail_not_object(s->prefix, "the dataset",
                                                      &s->parts.key_err);
            key_error(s);
        }
        return;
    }
    if (s->keys_final || !s->root_obj)
        return;
    int m = s->member;
    if (d == 1) {
        if (m == K_SKIP || k == TD_JV_NULL)
            return; /* null is "not given" */
        if (m == K_NAME) {
            s->parts.name_present = 1;
            if (k != TD_JV_STRING) {
                char pn[TD_JSON_PATH_MAX];
                td_json_path(pn, s->prefix, "name");
                s->parts.name_st = td_json_fail_not_string(pn, k, &s->parts.name_err);
            }
            return;
        }
        s->b[m].part->present = 1;
        build_value(s, &s->b[m], 0, k, nm, text, tlen, off);
        if (m == K_X)
            x_failed(s);
        return;
    }
    if (m >= NB)
        return;
    build_value(s, &s->b[m], d - 1, k, nm, text, tlen, off);
    if (m == K_X)
        x_failed(s);
}

/* The container that was a value at depth d has ended at off (just past it). */
static void on_close(td_dstream *s, int d, int is_array, uint64_t off)
{
    if (s->objmode) {
        obj_close(s, d, is_array, off);
        return;
    }
    if (d == 0 || s->keys_final || !s->root_obj || s->member >= NB)
        return;
    build_close(s, &s->b[s->member], d - 1, is_array, off);
    if (s->member == K_X)
        x_failed(s);
}

/* A key of the root object has been read (s->key, s->cap_len, s->cap_total). */
static void on_key(td_dstream *s)
{
    s->member = K_SKIP;
    if (s->objmode) {
        obj_key(s);
        return;
    }
    if (s->keys_final || !s->root_obj)
        return;
    const char *key = s->key;
    int idx = -1;
    if (s->cap_total <= KEY_CAP)
        for (int k = 0; KEYS[k]; k++)
            if (strcmp(KEYS[k], key) == 0)
                idx = k;
    int repeated = idx >= 0 && (s->seen & (1u << idx));
    td_status st = td_json_check_key(key, repeated, s->prefix, "the dataset", KEYS,
                                     &s->parts.key_err);
    if (st) {
        s->parts.key_st = st;
        key_error(s);
        return;
    }
    s->seen |= 1u << idx;
    s->member = idx;
}

/* ---------------------------------------------------------------- JSON: lexer ---- */

static inline int is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* The bytes a number or literal is made of (anything else ends it). */
static inline int is_bare(unsigned char c)
{
    return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '.' || c == '+' ||
           c == '-' || c == '_';
}

/* After a complete value at the current depth. */
static inline void value_done(td_dstream *s)
{
    s->state = s->depth ? S_COMMA_OR_CLOSE : S_END;
}

/* Case-insensitive equality of text[0..n) with lower-case word. */
static int word_eq(const char *text, size_t n, const char *word)
{
    size_t k = strlen(word);
    if (n != k)
        return 0;
    for (size_t i = 0; i < k; i++)
        if ((text[i] | 0x20) != word[i])
            return 0;
    return 1;
}

/* A complete bare token text[0..n) at body offset off. Returns 0, or -1 when malformed
 * (then near_put has the token's bytes from the offending one). */
static int bare_token(td_dstream *s, const char *text, size_t n, uint64_t off)
{
    unsigned char c = (unsigned char)text[0];
    const char *t = text;
    size_t tn = n;
    if (c == '-' || c == '+') {
        t++;
        tn--;
    }
    if (tn && ((unsigned char)(*t | 0x20) >= 'a' && (unsigned char)(*t | 0x20) <= 'z')) {
        td_json_vkind k = TD_JV_NONE;
        if (t == text && n == 4 && memcmp(text, "true", 4) == 0)
            k = TD_JV_TRUE;
        else if (t == text && n == 5 && memcmp(text, "false", 5) == 0)
            k = TD_JV_FALSE;
        else if (t == text && n == 4 && memcmp(text, "null", 4) == 0)
            k = TD_JV_NULL;
        else if (word_eq(t, tn, "infinity") || word_eq(t, tn, "inf"))
            k = c == '-' ? TD_JV_NINF : TD_JV_PINF;
        else if (word_eq(t, tn, "nan"))
            k = TD_JV_NAN;
        if (k == TD_JV_NONE) {
            malformed(s, off, "not a JSON value (true, false, null, a number, NaN or "
                      "Infinity)");
            near_put(s, text, n);
            return -1;
        }
        on_value(s, s->depth, k, NULL, NULL, 0, off);
        value_done(s);
        return 0;
    }
    if (c == '+' || !(c == '-' || is_digit(c))) {
        malformed(s, off, "not a JSON value");
        near_put(s, text, n);
        return -1;
    }
    num nm;
    const char *stop;
    if (scan_number(text, text + n, 1, &nm, &stop) != SCAN_OK || stop != text + n) {
        size_t at = (size_t)(stop - text);
        malformed(s, off + at, "invalid number");
        near_put(s, stop, n - at);
        return -1;
    }
    on_value(s, s->depth, TD_JV_NUMBER, &nm, text, n, off);
    value_done(s);
    return 0;
}

/* Starts or continues a bare token at p; returns where the lexer goes on. */
static const char *bare(td_dstream *s, const char *p, const char *end)
{
    const char *q = p;
    while (q < end && is_bare((unsigned char)*q))
        q++;
    size_t n = (size_t)(q - p);
    if (s->tok == TOK_BARE) { /* continuing a token cut by the last piece */
        if (s->tok_len + n > TOK_MAX) {
            malformed(s, s->tok_off, "a number or literal longer than 4096 bytes");
            near_put(s, s->tok_buf, s->tok_len);
            return p;
        }
        memcpy(s->tok_buf + s->tok_len, p, n);
        s->tok_len += n;
        if (q == end)
            return q;
        s->tok = TOK_NONE;
        s->tok_buf[s->tok_len] = '\0';
        if (bare_token(s, s->tok_buf, s->tok_len, s->tok_off))
            return q; /* near continues after the token */
        return q;
    }
    if (q == end) { /* may go on in the next piece */
        if (n > TOK_MAX) {
            malformed(s, off_of(s, p), "a number or literal longer than 4096 bytes");
            return p;
        }
        s->tok = TOK_BARE;
        s->tok_off = off_of(s, p);
        memcpy(s->tok_buf, p, n);
        s->tok_len = n;
        return q;
    }
    if (n > TOK_MAX) {
        malformed(s, off_of(s, p), "a number or literal longer than 4096 bytes");
        return p;
    }
    if (bare_token(s, p, n, off_of(s, p)))
        return q;
    return q;
}

/* The tight loop over a row of numbers of builder b, entered at p with a value
 * expected. Leaves (returning where it stopped, state consistent) at anything but
 * number, comma, number, ... */
static const char *row_loop(td_dstream *s, build *b, const char *p, const char *end)
{
    for (;;) {
        unsigned char c = (unsigned char)*p;
        if (!(c == '-' || is_digit(c)))
            return p;
        if (b->i > 0 && b->j >= b->C)
            return p;
        num nm;
        const char *q;
        if (scan_number(p, end, 0, &nm, &q) != SCAN_OK || is_bare((unsigned char)*q) ||
            q - p > TOK_MAX)
            return p;
        if (b->generic) { /* every number is kept */
            generic_elem(s, b, b->i, b->j, TD_JV_NUMBER, &nm, p, (size_t)(q - p));
            if (s->done)
                return end;
        } else {
            double d;
            float f = num_f32(&nm, p, (size_t)(q - p), &d);
            if (!td_json_rule_ok(&b->rule, d))
                return p;
            uint32_t bits;
            bits_of_float(&bits, f);
            if (b->n == b->cap) {
                if (build_reserve(s, b, b->n + 1))
                    return end;
            }
            b->data[b->n++] = bits;
        }
        b->j++;
        p = q;
        /* after the value */
        while (p < end && is_ws((unsigned char)*p))
            p++;
        if (p == end || *p != ',') {
            s->state = S_COMMA_OR_CLOSE;
            return p;
        }
        p++;
        while (p < end && is_ws((unsigned char)*p))
            p++;
        s->state = S_VALUE;
        if (p == end)
            return p;
    }
}

/* Starts a string at p (just past the quote). */
static void string_start(td_dstream *s, int is_key)
{
    s->tok = TOK_STR;
    s->str_key = is_key;
    s->esc = 0;
    s->esc_hi = 0;
    s->cap_len = s->cap_total = 0;
    s->cap_nul = 0;
    s->srole = STR_SKIP;
    if (is_key && s->depth == 1 && s->root_obj && !s->keys_final) {
        s->srole = STR_KEY;
        s->cap_buf = s->key;
        s->cap_max = KEY_CAP;
    } else if (!is_key && s->depth == 1 && s->root_obj && !s->keys_final &&
               s->member == K_NAME) {
        s->srole = STR_NAME;
        s->cap_buf = s->name_buf;
        s->cap_max = NAME_CAP;
    } else if (!is_key && s->depth == 2 && s->root_obj && !s->keys_final &&
               s->member == K_Y && s->b[B_LABELS].name_pending) {
        s->srole = STR_LABEL;
        s->cap_buf = s->label_buf;
        s->cap_max = TD_CLASS_NAME_MAX;
    }
}

static inline void cap_put(td_dstream *s, const char *p, size_t n)
{
    if (s->srole == STR_SKIP || s->cap_nul)
        return;
    s->cap_total += n;
    size_t room = s->cap_max - s->cap_len;
    if (n > room)
        n = room;
    memcpy(s->cap_buf + s->cap_len, p, n);
    s->cap_len += n;
}

/* A decoded code point (cJSON's UTF-8). */
static void cap_utf8(td_dstream *s, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp == 0) { /* six bytes that are never UTF-8, as td_json_parse makes of the
                    * escape: the string is refused (or the key unknown), never cut */
        cap_put(s, "\xff\xff\xff\xff\xff\xff", 6);
        return;
    }
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    cap_put(s, u, n);
}

static void string_end(td_dstream *s)
{
    s->tok = TOK_NONE;
    if (s->srole != STR_SKIP)
        s->cap_buf[s->cap_len] = '\0';
    if (s->str_key) {
        if (s->srole == STR_KEY)
            on_key(s);
        else if (s->depth == 1)
            s->member = K_SKIP;
        s->state = S_COLON;
        return;
    }
    if (s->srole == STR_LABEL)
        label_done(s, &s->b[B_LABELS]);
    if (s->srole == STR_NAME && !s->parts.name_st) {
        s->parts.name = strdup(s->cap_buf);
        s->parts.name_len = s->cap_total;
        if (!s->parts.name)
            oom(s, "name");
    }
    value_done(s);
}

static int hex_val(unsigned char c)
{
    if (is_digit(c))
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Continues a string at p; returns where the lexer goes on. */
static const char *string_more(td_dstream *s, const char *p, const char *end)
{
    while (p < end) {
        if (s->esc == 0) {
            const char *q = p;
            while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
                q++;
            cap_put(s, p, (size_t)(q - p));
            p = q;
            if (p == end)
                return p;
            if (*p == '"') {
                s->str_end = off_of(s, p) + 1;
                string_end(s);
                return p + 1;
            }
            if (*p == '\\') {
                s->esc = 1;
                p++;
                continue;
            }
            malformed(s, off_of(s, p), "a control character inside a string (write it as "
                      "an escape)");
            return p;
        }
        unsigned char c = (unsigned char)*p;
        if (s->esc == 1) {
            char out = 0;
            switch (c) {
            case '"': out = '"'; break;
            case '\\': out = '\\'; break;
            case '/': out = '/'; break;
            case 'b': out = '\b'; break;
            case 'f': out = '\f'; break;
            case 'n': out = '\n'; break;
            case 'r': out = '\r'; break;
            case 't': out = '\t'; break;
            case 'u':
                s->esc = 2;
                s->esc_u = 0;
                p++;
                continue;
            default:
                malformed(s, off_of(s, p), "invalid escape in a string");
                return p;
            }
            cap_put(s, &out, 1);
            s->esc = 0;
            p++;
            continue;
        }
        if (s->esc >= 2 && s->esc <= 5) {
            int h = hex_val(c);
            if (h < 0) {
                malformed(s, off_of(s, p), "invalid \\u escape: four hex digits are needed");
                return p;
            }
            s->esc_u = s->esc_u * 16 + (uint32_t)h;
            p++;
            if (++s->esc < 6)
                continue;
            uint32_t u = s->esc_u;
            if (s->esc_hi) {
                if (u < 0xDC00 || u > 0xDFFF) {
                    malformed(s, off_of(s, p - 1), "invalid \\u escape: a high surrogate "
                              "must be followed by a low one");
                    near_put(s, p - 1, 1);
                    return p;
                }
                cap_utf8(s, 0x10000 + (((s->esc_hi & 0x3FF) << 10) | (u & 0x3FF)));
                s->esc_hi = 0;
                s->esc = 0;
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                malformed(s, off_of(s, p - 1), "invalid \\u escape: a low surrogate without "
                          "a high one");
                near_put(s, p - 1, 1);
                return p;
            } else if (u >= 0xD800 && u <= 0xDBFF) {
                s->esc_hi = u;
                s->esc = 6;
            } else {
                cap_utf8(s, u);
                s->esc = 0;
            }
            continue;
        }
        /* 6: a '\' then 7: a 'u' must follow a high surrogate */
        if (c != (s->esc == 6 ? '\\' : 'u')) {
            malformed(s, off_of(s, p), "invalid \\u escape: a high surrogate must be "
                      "followed by a low one");
            return p;
        }
        s->esc = s->esc == 6 ? 7 : 2;
        s->esc_u = 0;
        p++;
    }
    return p;
}

static void open_container(td_dstream *s, unsigned char c, const char *p)
{
    if (s->depth >= MAX_DEPTH) {
        malformed(s, off_of(s, p), "nested deeper than 1000 levels");
        return;
    }
    on_value(s, s->depth, c == '[' ? TD_JV_ARRAY : TD_JV_OBJECT, NULL, NULL, 0, off_of(s, p));
    s->ctype[s->depth++] = c;
    s->state = c == '[' ? S_VALUE_OR_CLOSE : S_KEY_OR_CLOSE;
}

static void close_container(td_dstream *s, const char *p)
{
    s->depth--;
    on_close(s, s->depth, s->ctype[s->depth] == '[', off_of(s, p) + 1);
    if (s->depth == 1)
        s->member = K_SKIP;
    value_done(s);
}

/* The lexer over one piece. */
static void lex(td_dstream *s, const char *p, const char *end)
{
    while (p < end) {
        if (s->tok == TOK_STR) {
            p = string_more(s, p, end);
            if (s->done)
                goto stop;
            continue;
        }
        if (s->tok == TOK_BARE) {
            p = bare(s, p, end);
            if (s->done)
                goto stop;
            continue;
        }
        unsigned char c = (unsigned char)*p;
        if (is_ws(c)) {
            p++;
            continue;
        }
        switch (s->state) {
        case S_VALUE_OR_CLOSE:
            if (c == ']') {
                close_container(s, p);
                p++;
                break;
            }
            /* fall through */
        case S_VALUE:
            if (!s->started)
                s->started = 1;
            if (c == '[' || c == '{') {
                open_container(s, c, p);
                p++;
            } else if (c == '"') {
                on_value(s, s->depth, TD_JV_STRING, NULL, NULL, 0, off_of(s, p));
                string_start(s, 0);
                p++;
            } else if (is_bare(c)) {
                build *b = NULL;
                if (s->depth == 3 && !s->keys_final && s->member < NB)
                    b = &s->b[s->member];
                else if (s->depth == 3 && s->objmode && s->om >= 0)
                    b = &s->arr[s->om].b;
                if (b) {
                    if (b->active && !b->failed && !b->rule.is_int && b->shape == SH_ROWS) {
                        const char *q = row_loop(s, b, p, end);
                        if (q != p || s->done) {
                            p = q;
                            break;
                        }
                    }
                }
                p = bare(s, p, end);
            } else {
                malformed(s, off_of(s, p), "expected a value");
            }
            break;
        case S_KEY_OR_CLOSE:
            if (c == '}') {
                close_container(s, p);
                p++;
                break;
            }
            /* fall through */
        case S_KEY:
            if (c == '"') {
                if (s->objmode && s->depth == 1)
                    obj_member_begin(s, off_of(s, p));
                string_start(s, 1);
                p++;
            } else {
                malformed(s, off_of(s, p), "expected a key (a string in double quotes)");
            }
            break;
        case S_COLON:
            if (c == ':') {
                s->state = S_VALUE;
                p++;
            } else {
                malformed(s, off_of(s, p), "expected ':' after a key");
            }
            break;
        case S_COMMA_OR_CLOSE: {
            unsigned char open = s->ctype[s->depth - 1];
            if (s->objmode && s->depth == 1 && (c == ',' || c == '}'))
                obj_member_end(s, off_of(s, p));
            if (c == ',') {
                s->state = open == '[' ? S_VALUE : S_KEY;
                p++;
            } else if ((c == ']' && open == '[') || (c == '}' && open == '{')) {
                close_container(s, p);
                p++;
            } else {
                malformed(s, off_of(s, p), open == '[' ? "expected ',' or ']'"
                                                       : "expected ',' or '}'");
            }
            break;
        }
        case S_END:
            malformed(s, off_of(s, p), "unexpected data after the JSON value");
            break;
        }
        if (s->done)
            goto stop;
    }
    return;
stop:
    if (s->malformed && p < end && off_of(s, p) >= s->bad_off)
        near_put(s, p, (size_t)(end - p));
}

/* ---------------------------------------------------------------- JSON: finish --- */

/* The end of a JSON body: a token cut by it, an unfinished value; then the malformed or
 * fatal error, if any. */
static td_status syntax_finish(td_dstream *s, td_error *err)
{
    uint64_t total = s->fed;
    if (!s->done && s->tok == TOK_BARE) {
        s->tok = TOK_NONE;
        s->tok_buf[s->tok_len] = '\0';
        bare_token(s, s->tok_buf, s->tok_len, s->tok_off);
    }
    if (!s->done) {
        if (!s->started)
            malformed(s, total, "the body is empty");
        else if (s->tok == TOK_STR || s->depth > 0 || s->state != S_END)
            malformed(s, total, "unexpected end of input");
    }
    if (s->malformed)
        return td_json_fail_malformed(s->bad_off, s->bad_off >= total ? NULL : s->near,
                                      s->near_len, s->bad_why, err);
    if (s->done) {
        if (err)
            *err = s->fatal_err;
        return s->fatal_st;
    }
    return TD_OK;
}

static td_status json_finish(td_dstream *s, td_dataset_buf *out, td_error *err)
{
    td_status st = syntax_finish(s, err);
    if (st)
        return st;
    if (!s->keys_final) {
        for (int k = 0; k < NB; k++)
            if (k != B_PAIRS)
                build_finish(&s->b[k], NULL);
        /* pairs: indices in [0, N-1]; X comes first in every error order, so its N is
         * the one that matters */
        build *bp = &s->b[B_PAIRS];
        td_json_rule prule = bp->rule;
        if (!s->parts.X.st && bp->part->present) {
            int64_t N = s->parts.X.rows;
            prule.lo = 0;
            prule.hi = N - 1 > INT32_MAX ? INT32_MAX : N - 1;
            /* the values kept are those before the array's first error, row by row: an
             * index out of range among them comes first */
            for (size_t k = 0; k < bp->n; k++) {
                int32_t v;
                memcpy(&v, &bp->data[k], sizeof v);
                if (v >= prule.lo && v <= prule.hi)
                    continue;
                int64_t i = bp->C > 0 ? (int64_t)k / bp->C : 0;
                int64_t j = bp->C > 0 ? (int64_t)k % bp->C : (int64_t)k;
                char path[TD_JSON_PATH_MAX];
                td_json_index_path(path, bp->path, i, j);
                bp->part->st = td_json_elem_fail(&prule, TD_JV_NUMBER, v, path, &bp->part->err);
                break;
            }
        }
        build_finish(bp, &prule);
    }
    return td_dataset_parts_finish(out, &s->parts, s->prefix, err);
}

/* ================================================================ objects ======== */

/* Object mode: the lexer is the dataset's; the members are routed by key (obj_key). The
 * small members' bytes, and the inline dataset's, are "tapped": from tap_off on, every
 * byte lexed goes to the small text or to the nested parser, up to the ',' or '}' that
 * ends the member (obj_member_end), piece by piece (run flushes at a piece's end). */

static int key_index(const char *const *keys, const char *key)
{
    for (int k = 0; keys && keys[k]; k++)
        if (strcmp(keys[k], key) == 0)
            return k;
    return -1;
}

static void small_put(td_dstream *s, const char *p, size_t n)
{
    if (s->done)
        return;
    if (s->small.len + n > TD_OBJECT_SMALL_MAX) {
        fatal(s, TD_EINVAL, s->key, "%.64s: the members of the body other than its arrays "
              "take more than %u MiB of JSON", s->key, TD_OBJECT_SMALL_MAX >> 20);
        return;
    }
    td_sbuf_put(&s->small, p, n);
    if (s->small.oom)
        oom(s, "the body");
}

/* The tapped bytes up to body offset upto (all in the piece being lexed). */
static void tap_flush(td_dstream *s, uint64_t upto)
{
    if (s->tap == TAP_NONE || upto <= s->tap_off)
        return;
    const char *p = s->base + (s->tap_off - s->base_off);
    size_t n = (size_t)(upto - s->tap_off);
    s->tap_off = upto;
    if (s->tap == TAP_SMALL)
        small_put(s, p, n);
    else
        td_dstream_feed(s->child, p, n);
}

/* A member's key begins at off (its opening quote). */
static void obj_member_begin(td_dstream *s, uint64_t off)
{
    s->om = OM_NONE;
    if (s->small_members++)
        small_put(s, ",", 1);
    s->tap = TAP_SMALL;
    s->tap_off = off;
}

/* The member ends at off (the ',' or '}' after it). */
static void obj_member_end(td_dstream *s, uint64_t off)
{
    tap_flush(s, off);
    s->tap = TAP_NONE;
    s->om = OM_NONE;
}

/* The member's key is read (s->key): small members go on being tapped; the others keep
 * their key and get a stand-in value (obj_value). */
static void obj_key(td_dstream *s)
{
    int whole = s->cap_total <= KEY_CAP;
    if (whole && key_index(s->skeys, s->key) >= 0) {
        s->om = OM_SMALL;
        return;
    }
    tap_flush(s, s->str_end);
    s->tap = TAP_NONE;
    small_put(s, ":", 1);
    int a = whole ? key_index(s->akeys, s->key) : -1;
    if (a >= 0)
        s->om = s->arr[a].seen ? OM_OTHER : a;
    else if (whole && s->dkey && strcmp(s->key, s->dkey) == 0)
        s->om = s->data_seen ? OM_OTHER : OM_DATA;
    else
        s->om = OM_OTHER;
}

static td_dstream *dstream_json_prefixed(uint64_t size_hint, const char *prefix);
static td_dstream *dstream_new(uint64_t size_hint);
static const char *bom_check(td_dstream *s, const char *data, size_t len, int final);

static void obj_value(td_dstream *s, int d, td_json_vkind k, const num *nm, const char *text,
                      size_t tlen, uint64_t off)
{
    if (d == 0) {
        if (k == TD_JV_OBJECT) {
            s->root_obj = 1;
            small_put(s, "{", 1);
        }
        return;
    }
    if (!s->root_obj)
        return;
    int om = s->om;
    if (d > 1) {
        if (om >= 0)
            build_value(s, &s->arr[om].b, d - 1, k, nm, text, tlen, off);
        return;
    }
    if (om == OM_SMALL || om == OM_NONE)
        return;
    if (k == TD_JV_NULL)
        small_put(s, "null", 4);
    else
        small_put(s, "0", 1);
    if (om == OM_DATA) {
        s->data_seen = 1;
        s->data_null = k == TD_JV_NULL;
        if (s->data_null)
            return;
        if (!(s->child = dstream_json_prefixed(s->size_hint, s->dkey))) {
            oom(s, s->dkey);
            return;
        }
        if (k == TD_JV_OBJECT || k == TD_JV_ARRAY || k == TD_JV_STRING) {
            s->tap = TAP_CHILD; /* begins here, in this piece */
            s->tap_off = off;
        } else { /* a number or literal (maybe cut across pieces): not a dataset either */
            td_dstream_feed(s->child, "0", 1);
        }
        return;
    }
    if (om >= 0) {
        td_jarray *a = &s->arr[om];
        a->seen = 1;
        if (k == TD_JV_NULL) { /* null is "not given" */
            s->om = OM_OTHER;
            return;
        }
        a->part.present = 1;
        build_value(s, &a->b, 0, k, nm, text, tlen, off);
    }
}

static void obj_close(td_dstream *s, int d, int is_array, uint64_t off)
{
    if (d >= 1 && s->root_obj && s->om >= 0)
        build_close(s, &s->arr[s->om].b, d - 1, is_array, off);
}

td_dstream *td_dstream_object(const char *const *array_keys, const char *const *small_keys,
                              const char *dataset_key, uint64_t size_hint)
{
    td_dstream *s = dstream_new(size_hint);
    if (!s)
        return NULL;
    s->objmode = 1;
    s->akeys = array_keys;
    s->skeys = small_keys;
    s->dkey = dataset_key;
    s->om = OM_NONE;
    td_sbuf_init(&s->small);
    while (array_keys && array_keys[s->nak])
        s->nak++;
    if (!(s->arr = calloc((size_t)s->nak + 1, sizeof *s->arr))) {
        free(s);
        return NULL;
    }
    for (int k = 0; k < s->nak; k++) {
        build *b = &s->arr[k].b;
        build_init(b, &s->arr[k].part, array_keys[k], SH_LABELS, 0, 0, 0, 0);
        b->generic = 1;
        b->fb = b->ib = b->rb = b->nb = -1;
    }
    return s;
}

td_status td_dstream_object_finish(td_dstream *s, const cJSON **members, td_error *err)
{
    *members = NULL;
    if (s->finished)
        return td_fail(err, TD_EINTERNAL, NULL, "td_dstream_object_finish called twice");
    s->finished = 1;
    if (!s->bom_checked && !s->done)
        bom_check(s, "", 0, 1);
    td_status st = syntax_finish(s, err);
    if (st)
        return st;
    if (s->root_obj) {
        small_put(s, "}", 1);
        if ((st = syntax_finish(s, err)))
            return st;
        if ((st = td_json_parse(&s->members, s->small.data, s->small.len, err)))
            return st;
        td_sbuf_fini(&s->small);
    } else if (!(s->members = cJSON_CreateArray())) {
        return td_fail(err, TD_ENOMEM, "", "out of memory");
    }
    *members = s->members;
    return TD_OK;
}

td_jarray *td_dstream_array(td_dstream *s, const char *key)
{
    int k = key_index(s->akeys, key);
    return k >= 0 && s->arr[k].part.present ? &s->arr[k] : NULL;
}

td_status td_dstream_dataset(td_dstream *s, td_dataset_buf *out, td_error *err)
{
    memset(out, 0, sizeof *out);
    if (!s->child)
        return td_fail(err, TD_EINTERNAL, s->dkey, "no inline dataset to read");
    return td_dstream_finish(s->child, out, err);
}

int td_jarray_rows(const td_jarray *a)
{
    return a->b.root_kind == TD_JV_NONE && a->b.shape == SH_ROWS;
}

/* Reads a generic array under rule r as a matrix or a vector: the tree readers'
 * (json_util.c read_matrix / read_vector) result and first error. The values kept are
 * those before the builder's own first error (a shape or a kind), in element order, so
 * a value refused by r among them comes first. Integers are converted in place. */
static td_status jarray_read(void **out, int64_t *rows, int64_t *cols, td_jarray *a,
                             const td_json_rule *r, int matrix, const char *path,
                             td_error *err)
{
    build *b = &a->b;
    char ep[TD_JSON_PATH_MAX];
    *out = NULL;
    *rows = *cols = 0;
    if (b->root_kind != TD_JV_NONE)
        return matrix ? td_json_fail_not_rows(path, b->root_kind, err)
                      : td_json_fail_not_numbers(path, b->root_kind, err);
    if (b->i == 0)
        return (r->flags & TD_JSON_EMPTY_OK) ? TD_OK : td_json_fail_empty(path, err);
    int rows_mode = b->shape == SH_ROWS;
    if (matrix && !rows_mode)
        return td_json_fail_first_not_row(path, b->first_kind, err);
    if (!matrix && rows_mode) {
        td_json_index_path(ep, path, 0, -1);
        return td_json_elem_fail(r, TD_JV_ARRAY, 0, ep, err);
    }
    int64_t C = rows_mode ? b->C : 1;
    int bools = r->is_int && (r->flags & TD_JSON_BOOLS);
    size_t e = 0;
    for (size_t k = 0; k < b->n; k++) {
        int64_t ks = (int64_t)k;
        float f;
        memcpy(&f, &b->data[k], sizeof f);
        double v = f; /* d itself unless noted on the side */
        td_json_vkind kind = ks == b->fb ? b->fb_kind : TD_JV_NUMBER;
        int ok;
        if (kind != TD_JV_NUMBER && !bools) {
            ok = 0;
        } else if (!r->is_int) {
            if (ks == b->rb)
                v = b->rb_d;
            else if (ks == b->nb)
                v = b->nb_d;
            ok = td_json_rule_ok(r, v);
        } else {
            if (ks == b->ib)
                v = b->ib_d;
            else if (e < b->nexc && b->exc[e].k == ks)
                v = b->exc[e++].v;
            ok = td_json_rule_ok(r, v);
            if (ok) {
                int32_t iv = (int32_t)v;
                memcpy(&b->data[k], &iv, sizeof iv);
            }
        }
        if (!ok) {
            if (rows_mode)
                td_json_index_path(ep, path, ks / C, ks % C);
            else
                td_json_index_path(ep, path, ks, -1);
            return td_json_elem_fail(r, kind, v, ep, err);
        }
    }
    if (a->part.st) {
        if (err)
            *err = a->part.err;
        return a->part.st;
    }
    if (b->bad) {
        td_json_index_path(ep, path, b->bad_i, b->bad_j);
        return td_json_elem_fail(r, b->bad_kind, b->bad_value, ep, err);
    }
    if (b->cap > b->n) { /* give back the reserve */
        uint32_t *p = realloc(b->data, (b->n ? b->n : 1) * sizeof *p);
        if (p)
            b->data = p;
    }
    *out = b->data;
    b->data = NULL;
    b->n = b->cap = 0;
    *rows = rows_mode ? a->part.rows : b->i;
    *cols = C;
    return TD_OK;
}

td_status td_jarray_matrix_f32(float **out, int64_t *rows, int64_t *cols, td_jarray *a,
                               unsigned flags, const char *path, td_error *err)
{
    td_json_rule r = {0, flags, 0, 0};
    return jarray_read((void **)out, rows, cols, a, &r, 1, path, err);
}

td_status td_jarray_vector_f32(float **out, int64_t *n, td_jarray *a, unsigned flags,
                               const char *path, td_error *err)
{
    td_json_rule r = {0, flags, 0, 0};
    int64_t cols;
    return jarray_read((void **)out, n, &cols, a, &r, 0, path, err);
}

td_status td_jarray_vector_i32(int32_t **out, int64_t *n, td_jarray *a, int64_t lo,
                               int64_t hi, unsigned flags, const char *path, td_error *err)
{
    td_json_rule r = {1, flags, lo < INT32_MIN ? INT32_MIN : lo, hi > INT32_MAX ? INT32_MAX : hi};
    int64_t cols;
    return jarray_read((void **)out, n, &cols, a, &r, 0, path, err);
}

td_status td_jarray_labels_i32(int32_t **out, int64_t *rows, int64_t *cols, int *grouped,
                               td_jarray *a, const char *path, td_error *err)
{
    td_json_rule r = {1, 0, INT32_MIN, INT32_MAX};
    *grouped = td_jarray_rows(a);
    td_status st = jarray_read((void **)out, rows, cols, a, &r, *grouped, path, err);
    if (!*grouped)
        *cols = 1;
    return st;
}

/* ================================================================ CSV =========== */

#define LOC_FMT "line %lld, column %lld"

/* A field holding ';' or tabs while the delimiter is ',': the file is likely separated by
 * those. Writes the hint and returns 1, else 0. */
static int sep_hint(const td_dstream *s, char *hint, size_t cap)
{
    const char *sep = NULL;
    if (s->opts.delimiter == ',' && memchr(s->field, ';', s->flen))
        sep = ";";
    else if (s->opts.delimiter == ',' && memchr(s->field, '\t', s->flen))
        sep = "tab";
    if (sep)
        snprintf(hint, cap, " (the file looks %s-separated: pass delimiter=%s)", sep, sep);
    return sep != NULL;
}

/* "line L, column C: ..." (+ the header hint for an error on line 1). */
static void csv_fail(td_dstream *s, int64_t line, int64_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void csv_fail(td_dstream *s, int64_t line, int64_t col, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char field[64];
    snprintf(field, sizeof field, LOC_FMT, (long long)line, (long long)col);
    char hint[96] = "";
    if (!sep_hint(s, hint, sizeof hint) && s->header_hint && line == 1)
        snprintf(hint, sizeof hint, " (if the first line names the columns, pass header=true)");
    fatal(s, TD_EINVAL, field, "%s: %s%s", field, what, hint);
}

/* Is the record being read parsed (not the header)? */
static inline int csv_parsing(const td_dstream *s)
{
    return !(s->first_record && s->opts.header);
}

static void field_begin(td_dstream *s)
{
    s->flen = 0;
    s->fover = 0;
    s->field_line = s->line;
}

/* Keeps the field's bytes (leading blanks dropped: they are trimmed anyway). */
static void field_put(td_dstream *s, const char *p, size_t n)
{
    if (s->flen == 0)
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
    size_t room = FIELD_CAP - s->flen;
    if (n <= room) {
        memcpy(s->field + s->flen, p, n);
        s->flen += n;
        return;
    }
    memcpy(s->field + s->flen, p, room);
    s->flen = FIELD_CAP;
    for (size_t i = room; i < n && !s->fover; i++)
        s->fover = p[i] != ' ' && p[i] != '\t';
}

/* The field's text without trailing blanks (leading ones were never kept). */
static size_t field_trim(const char *t, size_t n)
{
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    return n;
}

static int rec_grow(td_dstream *s)
{
    size_t cap = s->rec_cap ? s->rec_cap * 2 : 64;
    double *nd = realloc(s->rec_d, cap * sizeof *nd);
    if (nd)
        s->rec_d = nd;
    float *nf = realloc(s->rec_f, cap * sizeof *nf);
    if (nf)
        s->rec_f = nf;
    unsigned char *ne = realloc(s->rec_exact, cap);
    if (ne)
        s->rec_exact = ne;
    int64_t *nl = realloc(s->rec_line_of, cap * sizeof *nl);
    if (nl)
        s->rec_line_of = nl;
    if (!nd || !nf || !ne || !nl) {
        fatal(s, TD_ENOMEM, "", "out of memory reading the CSV body");
        return -1;
    }
    s->rec_cap = cap;
    return 0;
}

/* Would strtod read all of t[0..n) as a finite or infinite number (as field_end does)? */
static int looks_numeric(const char *t, size_t n)
{
    if (n == 0 || n >= 128)
        return 0;
    char buf[128];
    memcpy(buf, t, n);
    buf[n] = '\0';
    char *end;
    (void)strtod(buf, &end);
    return end == buf + n;
}

/* A field of the header: its trimmed text kept as a column name. */
static void header_field(td_dstream *s)
{
    s->rec_n++; /* (a name is kept up to FIELD_CAP bytes) */
    char **nh = realloc(s->hdr, (size_t)(s->nhdr + 1) * sizeof *nh);
    if (!nh) {
        fatal(s, TD_ENOMEM, "", "out of memory reading the CSV header");
        return;
    }
    s->hdr = nh;
    size_t n = field_trim(s->field, s->flen);
    if (!(s->hdr[s->nhdr] = malloc(n + 1))) {
        fatal(s, TD_ENOMEM, "", "out of memory reading the CSV header");
        return;
    }
    memcpy(s->hdr[s->nhdr], s->field, n);
    s->hdr[s->nhdr++][n] = '\0';
}

/* The header has ended: label_column given by name is found among its names. */
static void header_end(td_dstream *s)
{
    if (s->opts.label_column == TD_CSV_LABEL_FIRST)
        s->lab_idx = 0;
    else if (s->opts.label_column == TD_CSV_LABEL_LAST)
        s->lab_idx = s->nhdr - 1;
    if (s->opts.label_column != TD_CSV_LABEL_NAMED)
        return;
    for (int64_t k = 0; k < s->nhdr; k++)
        if (strcmp(s->hdr[k], s->opts.label_name) == 0) {
            s->lab_idx = k;
            return;
        }
    char list[256] = "";
    for (int64_t k = 0; k < s->nhdr && strlen(list) < 200; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%.40s\"",
                 k ? ", " : "", s->hdr[k]);
    fatal(s, TD_EINVAL, "label_column", "label_column \"%.64s\" is not a column of the header "
          "(%s)", s->opts.label_name, list);
}

/* The field just read: a number (as strtod reads the trimmed text), kept for the
 * record's checks. */
static void field_end(td_dstream *s)
{
    if (s->done)
        return;
    if (!csv_parsing(s)) { /* the header: its names are kept */
        header_field(s);
        return;
    }
    const char *t = s->field;
    size_t n = field_trim(s->field, s->flen);
    int64_t line = s->field_line, col = s->col;
    if (col == 1) { /* kept for label_column=first */
        memcpy(s->first_field, t, n);
        s->first_len = n;
    }
    /* the label column, or (label_column=last, the first record) maybe it */
    int maybe_label = s->labelled && (s->lab_idx >= 0 ? col - 1 == s->lab_idx : s->ncols < 0
                                      ? s->opts.label_column == TD_CSV_LABEL_LAST
                                      : col == s->ncols);
    if (maybe_label) {
        memcpy(s->lab_text, t, n);
        s->lab_len = n;
    }
    if (s->pend_col && s->lab_idx < 0) { /* the field before was no number, nor the last */
        csv_fail(s, s->pend_line, s->pend_col, "\"%s\" is not a number", s->pend_text);
        return;
    }
    if (n == 0 && !s->fover) {
        csv_fail(s, line, col, s->named && maybe_label ? "empty class name"
                                                      : "empty field; expected a number");
        return;
    }
    if (maybe_label && !s->fover && n < 128 && !looks_numeric(t, n)) { /* a class name */
        memcpy(s->pend_text, t, n);
        s->pend_text[n] = '\0';
        s->pend_col = col, s->pend_line = line;
        if (s->rec_n == s->rec_cap && rec_grow(s))
            return;
        s->rec_d[s->rec_n] = 0;
        s->rec_f[s->rec_n] = 0;
        s->rec_exact[s->rec_n] = 2; /* a name: record_end decides */
        s->rec_line_of[s->rec_n] = line;
        s->rec_n++;
        return;
    }
    if (s->fover || n >= 128) {
        csv_fail(s, line, col, "\"%.40s...\" is not a number", t);
        return;
    }
    double d;
    float f;
    int exact = 1;
    num nm;
    const char *stop;
    char buf[128];
    memcpy(buf, t, n);
    buf[n] = '\0';
    if (scan_number(t, t + n, 1, &nm, &stop) == SCAN_OK && stop == t + n) {
        f = num_f32(&nm, t, n, &d);
        /* not exact: f is right and d within a few ulps, |d| < 2^127 (num_f32) */
        exact = num_exact(&nm, &d) || !(fabs(d) < 0x1p127);
    } else { /* not a JSON number: strtod decides (hex, "+1", ".5", "inf", ...) */
        char *end;
        d = strtod(buf, &end);
        if (end != buf + n) {
            csv_fail(s, line, col, "\"%s\" is not a number", buf);
            return;
        }
        f = (float)d;
    }
    if (!isfinite(d)) {
        csv_fail(s, line, col, "\"%s\" is not a finite number", buf);
        return;
    }
    if (s->rec_n == s->rec_cap && rec_grow(s))
        return;
    s->rec_d[s->rec_n] = d;
    s->rec_f[s->rec_n] = f;
    s->rec_exact[s->rec_n] = (unsigned char)exact;
    s->rec_line_of[s->rec_n] = line;
    s->rec_n++;
}

/* The label of a record (its column k) as a class name: its index into the names so far
 * pushed to y. -1 when the record failed. */
static int label_name(td_dstream *s, int64_t k)
{
    int64_t line = s->rec_line_of[k];
    if (!s->named) {
        csv_fail(s, line, k + 1, "label \"%s\" is not an integer class index (the first "
                 "row's label is a number; a column of class names has a name on every row)",
                 s->pend_text);
        return -1;
    }
    if (memchr(s->lab_text, '\0', s->lab_len)) {
        csv_fail(s, line, k + 1, "a class name must be text without NUL bytes");
        return -1;
    }
    int32_t idx = td_names_add(&s->names, s->lab_text, s->lab_len);
    if (idx == -1) {
        fatal(s, TD_ENOMEM, "", "out of memory reading the CSV body");
        return -1;
    }
    if (idx == -2) {
        csv_fail(s, line, k + 1, "more than %d distinct class names", TD_MAX_CLASSES);
        return -1;
    }
    uint32_t bits;
    memcpy(&bits, &idx, sizeof bits);
    build_push(s, &s->cy, bits);
    return 0;
}

/* The record just read (rec_n fields) has ended at body offset off: the checks of a
 * record, then its values into X and y. */
static void record_end(td_dstream *s, uint64_t off)
{
    if (s->done)
        return;
    int64_t nf = (int64_t)s->rec_n;
    int labelled = s->labelled;
    if (s->ncols < 0) {
        s->ncols = nf;
        if (labelled && s->ncols < 2) {
            char hint[96] = "";
            sep_hint(s, hint, sizeof hint);
            fatal(s, TD_EINVAL, "label_column", "line %lld has 1 column; with label_column=%s "
                  "at least 2 are needed (or pass label_column=none)%s", (long long)s->rec_line,
                  s->opts.label_column == TD_CSV_LABEL_FIRST ? "first" : "last", hint);
            return;
        }
        s->D = labelled ? s->ncols - 1 : s->ncols;
    } else if (nf != s->ncols) {
        char field[32];
        snprintf(field, sizeof field, "line %lld", (long long)s->rec_line);
        fatal(s, TD_EINVAL, field, "line %lld has %lld column%s, expected %lld (like line %s)",
              (long long)s->rec_line, (long long)nf, nf == 1 ? "" : "s", (long long)s->ncols,
              s->opts.header ? "1, the header" : "1");
        return;
    }
    int skip = !csv_parsing(s);
    s->first_record = 0;
    s->rec_n = 0;
    if (skip) {
        header_end(s);
        return;
    }
    s->header_hint = 0; /* past the first line */
    int64_t lab = !labelled ? -1 : s->lab_idx >= 0 ? s->lab_idx
                : s->opts.label_column == TD_CSV_LABEL_FIRST ? 0 : nf - 1;
    if (s->pend_col && s->pend_col - 1 != lab) {
        csv_fail(s, s->pend_line, s->pend_col, "\"%s\" is not a number", s->pend_text);
        return;
    }
    s->pend_col = 0;
    if (labelled && s->N == 0)
        s->named = s->rec_exact[lab] == 2;
    if (s->N == 0 && s->size_hint > off && off > s->rec_off) {
        /* the first row tells how many bytes a row takes: reserve for the rest */
        uint64_t rows = (s->size_hint - s->rec_off) / (off - s->rec_off) * 11 / 10 + 2;
        uint64_t most = s->size_hint / 2 + 1;
        uint64_t want = rows * (uint64_t)s->D;
        if (want > most)
            want = most;
        build_reserve(s, &s->cx, (size_t)want);
        if (labelled)
            build_reserve(s, &s->cy, (size_t)(rows < most ? rows : most));
    }
    if (build_reserve(s, &s->cx, s->cx.n + (size_t)s->D))
        return;
    for (int64_t k = 0; k < nf; k++) {
        double v = s->rec_d[k];
        if (k == lab && (s->named || s->rec_exact[k] == 2)) {
            if (label_name(s, k))
                return;
        } else if (k == lab) {
            if (!s->rec_exact[k]) { /* integrality is decided on strtod's double */
                const char *t = k == 0 ? s->first_field : s->field;
                v = strtod_n(t, k == 0 ? s->first_len : field_trim(s->field, s->flen));
            }
            if (v != floor(v) || v < INT32_MIN || v > INT32_MAX) {
                csv_fail(s, s->rec_line_of[k], k + 1, "label %.17g is not an integer class "
                         "index", v);
                return;
            }
            int32_t t32 = (int32_t)v;
            uint32_t bits;
            memcpy(&bits, &t32, sizeof bits);
            build_push(s, &s->cy, bits);
        } else {
            /* as JSON's: refused when it rounds past float32 (3.4028235e38 is FLT_MAX) */
            if (isinf(s->rec_f[k])) {
                csv_fail(s, s->rec_line_of[k], k + 1, "%.9g is outside the float32 range "
                         "(|x| <= %.8g)", v, (double)FLT_MAX);
                return;
            }
            uint32_t bits;
            bits_of_float(&bits, s->rec_f[k]);
            s->cx.data[s->cx.n++] = bits;
        }
    }
    s->N++;
}

/* A record begins at p (its first field, which may start with blanks). */
static void record_begin(td_dstream *s, const char *p)
{
    s->rec_line = s->line;
    s->rec_n = 0;
    s->pend_col = 0;
    s->col = 1;
    if (s->N == 0)
        s->rec_off = s->cx.start_off = s->cy.start_off = off_of(s, p);
    field_begin(s);
}

/* One piece of a CSV body. */
static void lex_csv(td_dstream *s, const char *p, const char *end)
{
    while (p < end && !s->done) {
        unsigned char c = (unsigned char)*p;
        switch (s->cs) {
        case C_CR: /* after a CR: an LF may complete the line end */
            s->cs = C_REC;
            if (c == '\n') {
                p++;
                break;
            }
            /* fall through */
        case C_REC: /* the start of a line: blank lines (spaces only) are skipped */
            if (c == ' ' || c == '\t') {
                s->rec_ws = 1;
                p++;
                break;
            }
            if (c == '\n' || c == '\r') {
                s->rec_ws = 0;
                s->line++;
                s->cs = c == '\r' ? C_CR : C_REC;
                p++;
                break;
            }
            record_begin(s, p);
            if (s->rec_ws) { /* the field began at the blanks: it is unquoted */
                s->rec_ws = 0;
                s->cs = C_UNQUOTED;
                break;
            }
            s->cs = C_FIELD;
            /* fall through */
        case C_FIELD:
            field_begin(s);
            if (c == '"') {
                s->cs = C_QUOTED;
                p++;
                break;
            }
            s->cs = C_UNQUOTED;
            /* fall through */
        case C_UNQUOTED: {
            const char *q = p;
            const char dl = s->opts.delimiter;
            while (q < end && *q != dl && *q != '\n' && *q != '\r' && *q != '"')
                q++;
            field_put(s, p, (size_t)(q - p));
            p = q;
            if (p == end)
                break;
            c = (unsigned char)*p;
            if (c == '"') {
                csv_fail(s, s->field_line, s->col, "a quote inside an unquoted field; quote "
                         "the whole field and double the inner quotes");
                break;
            }
            goto field_done;
        }
        case C_QUOTED: {
            const char *q = p;
            while (q < end && *q != '"' && *q != '\n')
                q++;
            field_put(s, p, (size_t)(q - p));
            p = q;
            if (p == end)
                break;
            if (*p == '\n') {
                s->line++;
                field_put(s, p, 1);
                p++;
                break;
            }
            s->cs = C_QUOTE;
            p++;
            break;
        }
        case C_QUOTE: /* after a quote inside a quoted field: "" is a quote */
            if (c == '"') {
                field_put(s, "\"", 1);
                s->cs = C_QUOTED;
                p++;
                break;
            }
            s->cs = C_AFTER_QUOTE;
            /* fall through */
        case C_AFTER_QUOTE:
            if (c == ' ' || c == '\t') {
                p++;
                break;
            }
            if (c != (unsigned char)s->opts.delimiter && c != '\n' && c != '\r') {
                csv_fail(s, s->line, s->col, "unexpected character '%c' after a closing quote",
                         c);
                break;
            }
            goto field_done;
        }
        continue;
    field_done: /* at p: ',' or a line end after a field */
        field_end(s);
        if (c == (unsigned char)s->opts.delimiter) {
            s->col++;
            s->cs = C_FIELD;
            p++;
            continue;
        }
        record_end(s, off_of(s, p));
        s->line++;
        s->cs = c == '\r' ? C_CR : C_REC;
        p++;
    }
}

static td_status csv_finish(td_dstream *s, td_dataset_buf *out, td_error *err)
{
    if (!s->done) {
        uint64_t total = s->fed;
        switch (s->cs) {
        case C_REC:
        case C_CR:
            break;
        case C_FIELD: /* after a comma at the very end: an empty field */
            field_begin(s);
            /* fall through */
        case C_UNQUOTED:
        case C_QUOTE:
        case C_AFTER_QUOTE:
            field_end(s);
            record_end(s, total);
            break;
        case C_QUOTED:
            csv_fail(s, s->field_line, s->col, "unterminated quoted field: the closing quote is "
                     "missing");
            break;
        }
    }
    if (!s->done && s->N == 0)
        fatal(s, TD_EINVAL, "", "the CSV body has no data rows");
    if (s->done) {
        if (err)
            *err = s->fatal_err;
        return s->fatal_st;
    }
    memset(out, 0, sizeof *out);
    if (s->csv_name) {
        td_status st = td_dataset_name_copy(&out->name, s->csv_name, strlen(s->csv_name),
                                            "name", err);
        if (st)
            return st;
    }
    if (s->cx.cap > s->cx.n) { /* give back the reserve */
        uint32_t *p = realloc(s->cx.data, (s->cx.n ? s->cx.n : 1) * sizeof *p);
        if (p)
            s->cx.data = p;
    }
    out->X = (float *)s->cx.data;
    s->cx.data = NULL;
    if (s->labelled) {
        out->y = (int32_t *)s->cy.data;
        s->cy.data = NULL;
        td_status st;
        if (s->named && (st = td_names_finish(&s->names, out->y, s->N, &out->classes,
                                              &out->n_classes, err))) {
            td_dataset_buf_free(out);
            return st;
        }
    }
    if (s->hdr && s->nhdr == s->ncols) { /* the feature columns' names */
        int64_t lab = s->labelled ? s->lab_idx : -1;
        if (!(out->columns = calloc((size_t)s->nhdr, sizeof *out->columns))) {
            td_dataset_buf_free(out);
            return td_fail(err, TD_ENOMEM, "", "out of memory reading the CSV header");
        }
        for (int64_t k = 0; k < s->nhdr; k++)
            if (k != lab) {
                out->columns[out->n_columns++] = s->hdr[k];
                s->hdr[k] = NULL;
            }
    }
    out->ds.N = s->N;
    out->ds.D = s->D;
    out->ds.X = out->X;
    out->ds.y = out->y;
    out->ds.y_cols = s->labelled ? 1 : 0;
    return TD_OK;
}

/* ================================================================ public ========= */

static td_dstream *dstream_new(uint64_t size_hint)
{
    td_dstream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->size_hint = size_hint;
    s->state = S_VALUE;
    s->member = K_SKIP;
    return s;
}

td_dstream *td_dstream_json(uint64_t size_hint)
{
    td_dstream *s = dstream_new(size_hint);
    if (!s)
        return NULL;
    td_dataset_parts *p = &s->parts;
    build_init(&s->b[B_X], &p->X, "X", SH_ROWS, 0, 0, 0, 0);
    build_init(&s->b[B_LABELS], &p->y, "y", SH_LABELS, 1, 0, INT32_MIN, INT32_MAX);
    s->b[B_LABELS].names_ok = 1;
    build_init(&s->b[B_PROBS], &p->Y, "Y", SH_ROWS, 0, TD_JSON_NONNEG, 0, 0);
    build_init(&s->b[B_PAIRS], &p->pairs, "pairs", SH_ROWS, 1, 0, INT32_MIN, INT32_MAX);
    build_init(&s->b[B_PL], &p->pair_labels, "pair_labels", SH_VECTOR, 1, TD_JSON_BOOLS, 0, 1);
    return s;
}

/* A JSON dataset parser whose fields are named "prefix.X[i][j]", ... (prefix kept). */
static td_dstream *dstream_json_prefixed(uint64_t size_hint, const char *prefix)
{
    td_dstream *s = td_dstream_json(size_hint);
    if (!s)
        return NULL;
    static const char *const names[NB] = {"X", "y", "Y", "pairs", "pair_labels"};
    s->prefix = prefix;
    for (int k = 0; k < NB; k++)
        td_json_path(s->b[k].path, prefix, names[k]);
    return s;
}

td_dstream *td_dstream_csv(const td_csv_opts *o, const char *name, uint64_t size_hint)
{
    td_dstream *s = dstream_new(size_hint);
    if (!s)
        return NULL;
    s->csv = 1;
    s->opts = o ? *o : td_csv_opts_default();
    if (name && !(s->csv_name = strdup(name))) {
        free(s);
        return NULL;
    }
    s->line = 1;
    s->cs = C_REC;
    s->ncols = -1;
    s->first_record = 1;
    s->header_hint = !s->opts.header;
    s->labelled = s->opts.label_column != TD_CSV_LABEL_NONE;
    s->lab_idx = s->opts.label_column == TD_CSV_LABEL_FIRST ? 0 : -1;
    td_dataset_part *px = &s->parts.X, *py = &s->parts.y;
    build_init(&s->cx, px, "X", SH_ROWS, 0, 0, 0, 0);
    build_init(&s->cy, py, "y", SH_VECTOR, 1, 0, INT32_MIN, INT32_MAX);
    return s;
}

/* Lexes p[0..n), which starts at body offset off. */
static void run(td_dstream *s, const char *p, size_t n, uint64_t off)
{
    if (!n)
        return;
    if (s->done) { /* past a malformed offset: the bytes quoted after it */
        near_put(s, p, n);
        return;
    }
    s->base = p;
    s->base_off = off;
    if (s->csv) {
        lex_csv(s, p, p + n);
    } else {
        lex(s, p, p + n);
        if (s->tap != TAP_NONE && !s->done)
            tap_flush(s, off + n);
    }
}

/* The first three bytes are held until they show whether the body opens with a UTF-8
 * byte order mark (skipped); at the end of the body (final) fewer may do. */
static const char *bom_check(td_dstream *s, const char *data, size_t len, int final)
{
    size_t before = s->pre_len;
    size_t take = len < 3 - before ? len : 3 - before;
    memcpy(s->pre + before, data, take);
    s->pre_len += take;
    if (s->pre_len < 3 && !final)
        return NULL;
    s->bom_checked = 1;
    if (s->pre_len == 3 && memcmp(s->pre, "\xEF\xBB\xBF", 3) == 0)
        return data + take;
    run(s, s->pre, before, 0); /* the bytes of earlier pieces, then this piece's */
    return data;
}

int td_dstream_feed(td_dstream *s, const char *data, size_t len)
{
    if (s->finished)
        return 1;
    if (!s->done) {
        const char *p = data;
        if (!s->bom_checked)
            p = bom_check(s, data, len, 0);
        if (p)
            run(s, p, len - (size_t)(p - data), s->fed + (uint64_t)(p - data));
    } else if (s->malformed) {
        near_put(s, data, len);
    }
    s->fed += len;
    if (!s->done)
        return 0;
    return !s->malformed || s->near_len >= NEAR_MAX;
}

uint64_t td_dstream_bytes(const td_dstream *s)
{
    return s->fed;
}

td_status td_dstream_finish(td_dstream *s, td_dataset_buf *out, td_error *err)
{
    memset(out, 0, sizeof *out);
    if (s->finished)
        return td_fail(err, TD_EINTERNAL, NULL, "td_dstream_finish called twice");
    s->finished = 1;
    if (!s->bom_checked && !s->done)
        bom_check(s, "", 0, 1);
    td_status st = s->csv ? csv_finish(s, out, err) : json_finish(s, out, err);
    if (st)
        td_dataset_buf_free(out);
    return st;
}

void td_dstream_destroy(td_dstream *s)
{
    if (!s)
        return;
    for (int k = 0; k < NB; k++)
        build_drop(&s->b[k]);
    build_drop(&s->cx);
    build_drop(&s->cy);
    td_dataset_parts_fini(&s->parts);
    for (int k = 0; k < s->nak; k++)
        build_drop(&s->arr[k].b);
    free(s->arr);
    td_sbuf_fini(&s->small);
    cJSON_Delete(s->members);
    td_dstream_destroy(s->child);
    free(s->csv_name);
    td_names_fini(&s->names);
    td_strings_free(s->hdr, s->nhdr);
    free(s->rec_d);
    free(s->rec_f);
    free(s->rec_exact);
    free(s->rec_line_of);
    free(s);
}
