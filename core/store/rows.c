/* rows.c: multi-row statements on PostgreSQL (see rows.h). */
#include "store/rows.h"

#include "base/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define CHUNK_LOG 6 /* HG_ROWS_MAX == 1 << CHUNK_LOG */
#define MAX_COLS 9

/* Each kind's statement: its text before the rows, after them, and the
 * first row's columns, "%d" standing for the parameter's number. The
 * first row's casts give a VALUES list's columns their types (a column of
 * NULLs would otherwise have none); later rows take them from it. */
typedef struct spec {
  const char *head, *tail;
  int cols;
  const char *first[MAX_COLS];
} spec_t;

#define P "?%d"
#define BIGINT "CAST(?%d AS BIGINT)"
#define TEXT "CAST(?%d AS TEXT)"

static const spec_t specs[HG_ROWS_KINDS] = {
    [HG_ROWS_EVENTS] = {"INSERT INTO events (seq, id, type, organization_id, payload, created_at, deliveries) VALUES ",
                        "",
                        7,
                        {P, P, P, P, P, P, P}},
    [HG_ROWS_DELIVERIES] = {"INSERT INTO deliveries (seq, id, webhook_id, event_seq, status, next_attempt_at, "
                            "created_at, updated_at, lease_owner, lease_until) "
                            "SELECT v.s, v.i, v.w, v.e, 'pending', v.d, v.n, v.n, v.o, v.u FROM (VALUES ",
                            ") AS v (s, i, w, e, n, d, o, u) WHERE EXISTS "
                            "(SELECT 1 FROM webhooks x WHERE x.id = v.w COLLATE \"C\" AND x.active = 1)",
                            8,
                            {BIGINT, TEXT, TEXT, BIGINT, BIGINT, BIGINT, TEXT, BIGINT}},
    [HG_ROWS_ATTEMPTS] = {"INSERT INTO attempts (id, delivery_seq, attempt, started_at, duration_ms, status_code, "
                          "response_body, error, request_headers) "
                          "SELECT v.i, v.s, v.a, v.t, v.d, v.c, v.b, v.e, v.h FROM (VALUES ",
                          ") AS v (i, s, a, t, d, c, b, e, h) WHERE EXISTS "
                          "(SELECT 1 FROM deliveries x WHERE x.seq = v.s)",
                          9,
                          {TEXT, BIGINT, BIGINT, BIGINT, BIGINT, BIGINT, "CAST(?%d AS BYTEA)", TEXT, TEXT}},
    [HG_ROWS_DELIVERY_UPDATES] = {"UPDATE deliveries AS x SET status = v.st, attempts = v.a, status_code = v.c, "
                                  "next_attempt_at = v.n, updated_at = v.u, lease_owner = NULL, lease_until = NULL "
                                  "FROM (VALUES ",
                                  ") AS v (s, st, a, c, n, u) WHERE x.seq = v.s",
                                  6,
                                  {BIGINT, TEXT, BIGINT, BIGINT, BIGINT, BIGINT}},
};

static char *texts[HG_ROWS_KINDS][CHUNK_LOG + 1];
static int texts_ok;
static uv_once_t texts_once = UV_ONCE_INIT;

/* spec's text for rows rows: (first row), (?a, ?b, ...), ... numbered
 * from 1. */
static char *make_text(const spec_t *sp, int rows) {
  size_t cap = strlen(sp->head) + strlen(sp->tail) + (size_t)rows * (size_t)sp->cols * 32 + 64;
  char *s = malloc(cap);
  if (s == NULL) return NULL;
  size_t n = (size_t)snprintf(s, cap, "%s", sp->head);
  int p = 1;
  for (int r = 0; r < rows; r++) {
    n += (size_t)snprintf(s + n, cap - n, "%s(", r ? ", " : "");
    for (int c = 0; c < sp->cols; c++, p++) {
      if (c) n += (size_t)snprintf(s + n, cap - n, ", ");
      if (r == 0) n += (size_t)snprintf(s + n, cap - n, sp->first[c], p);
      else n += (size_t)snprintf(s + n, cap - n, "?%d", p);
    }
    n += (size_t)snprintf(s + n, cap - n, ")");
  }
  snprintf(s + n, cap - n, "%s", sp->tail);
  return s;
}

static void make_texts(void) {
  int ok = 1;
  for (int k = 0; k < HG_ROWS_KINDS; k++)
    for (int i = 0; i <= CHUNK_LOG; i++) ok &= (texts[k][i] = make_text(&specs[k], 1 << i)) != NULL;
  texts_ok = ok;
}

int hg_rows_send(hg_db_t *db, hg_rows_kind_t kind, size_t n, hg_rows_bind_fn bind, void *ud, const char *op) {
  uv_once(&texts_once, make_texts);
  if (!texts_ok) return hg_db_fail(db, HG_ENOMEM, op);
  const int cols = specs[kind].cols;
  for (size_t at = 0; at < n;) {
    int c = CHUNK_LOG;
    while (c > 0 && ((size_t)1 << c) > n - at) c--;
    size_t rows = (size_t)1 << c;
    hg_stmt_t *st = NULL;
    int rc = hg_db_prepare(db, texts[kind][c], &st);
    if (rc < 0) return hg_db_fail(db, rc, op);
    for (size_t r = 0; r < rows; r++) bind(st, (int)r * cols + 1, at + r, ud);
    rc = hg_db_defer(st);
    hg_db_release(st);
    if (rc < 0) return hg_db_fail(db, rc, op);
    at += rows;
  }
  return 0;
}
