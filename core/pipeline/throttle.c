/* throttle.c: per-webhook flow control (throttle.h): a token bucket for
 * rateLimit, a count of open attempts for maxConcurrency, and each
 * webhook's queue of held row numbers. */
#include "pipeline/throttle.h"

#include "base/buf.h"
#include "base/common.h"
#include "base/ids.h"
#include "base/list.h"
#include "base/metrics.h"

#include <stdlib.h>
#include <string.h>

#define FLOW_BUCKETS 256
/* Idle flows with a full bucket are looked for this often. */
#define SWEEP_MS 5000

struct hg_flow {
  hg_flow_t *next;     /* bucket chain */
  hg_list_t all;       /* every flow, for the sweep */
  hg_list_t waiting;   /* flows with held deliveries, in turn order (self-linked: none) */
  char id[HG_ID_MAX];
  hg_flow_limits_t lim;
  size_t taken;        /* attempts open (or handed out and not yet ended) */
  double tokens;       /* the bucket, as of refilled_at */
  int64_t refilled_at; /* Unix ms */
  int64_t *q;          /* held row numbers: a ring of cap, n from head */
  size_t head, n, cap;
};

struct hg_throttle {
  hg_flow_t *buckets[FLOW_BUCKETS];
  hg_list_t all, waiting;
  /* The row numbers held, all flows together: an open-addressing set
   * (0 marks a free slot: row numbers start at 1), so that a row offered
   * again (the cluster poll's orphans) is not held twice. */
  int64_t *set;
  size_t set_cap, held;
  int dirty;       /* a slot was given back or a limit changed since next() last found nothing */
  int64_t wake_at; /* the next token due for a flow that waits on its rate only */
  int64_t swept_at;
};

/* --- the set of held row numbers ----------------------------------------------- */

static size_t slot_of(int64_t seq, size_t cap) { return (size_t)((uint64_t)seq * 0x9E3779B97F4A7C15ull >> 17) & (cap - 1); }

static int set_has(const hg_throttle_t *t, int64_t seq) {
  if (t->set_cap == 0) return 0;
  for (size_t i = slot_of(seq, t->set_cap);; i = (i + 1) & (t->set_cap - 1)) {
    if (t->set[i] == seq) return 1;
    if (t->set[i] == 0) return 0;
  }
}

static void set_put_raw(int64_t *set, size_t cap, int64_t seq) {
  size_t i = slot_of(seq, cap);
  while (set[i] != 0) i = (i + 1) & (cap - 1);
  set[i] = seq;
}

static int set_add(hg_throttle_t *t, int64_t seq) {
  if ((t->held + 1) * 2 > t->set_cap) {
    size_t cap = t->set_cap ? t->set_cap * 2 : 64;
    int64_t *set = calloc(cap, sizeof(*set));
    if (set == NULL) return HG_ENOMEM;
    for (size_t i = 0; i < t->set_cap; i++)
      if (t->set[i] != 0) set_put_raw(set, cap, t->set[i]);
    free(t->set);
    t->set = set;
    t->set_cap = cap;
  }
  set_put_raw(t->set, t->set_cap, seq);
  t->held++;
  return 0;
}

/* Removes seq (present) and shifts back the entries after it that would
 * no longer be found (linear probing's deletion without tombstones). */
static void set_del(hg_throttle_t *t, int64_t seq) {
  size_t mask = t->set_cap - 1, i = slot_of(seq, t->set_cap);
  while (t->set[i] != seq) {
    if (t->set[i] == 0) return;
    i = (i + 1) & mask;
  }
  t->set[i] = 0;
  t->held--;
  for (size_t j = (i + 1) & mask; t->set[j] != 0; j = (j + 1) & mask) {
    size_t home = slot_of(t->set[j], t->set_cap);
    /* Entry j stays unless its home lies cyclically in (i, j]. */
    if (i <= j ? (home > i && home <= j) : (home > i || home <= j)) continue;
    t->set[i] = t->set[j];
    t->set[j] = 0;
    i = j;
  }
}

/* --- flows ----------------------------------------------------------------------- */

static size_t flow_bucket(const char *id) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 16777619u;
  return h % FLOW_BUCKETS;
}

static hg_flow_t *flow_find(const hg_throttle_t *t, const char *id) {
  for (hg_flow_t *f = t->buckets[flow_bucket(id)]; f; f = f->next)
    if (strcmp(f->id, id) == 0) return f;
  return NULL;
}

/* The bucket holds what 20 ms of the rate earn, and at least one token:
 * deliveries go out evenly spaced, and a rate above what the loop's
 * millisecond timers can space is still reached. */
static double capacity(const hg_flow_t *f) {
  double c = (double)f->lim.rate_milli / 1000.0 / 50.0;
  return c < 1.0 ? 1.0 : c;
}

static void refill(hg_flow_t *f, int64_t now) {
  if (f->lim.rate_milli <= 0 || now <= f->refilled_at) return;
  f->tokens += (double)(now - f->refilled_at) * (double)f->lim.rate_milli / 1e6;
  double cap = capacity(f);
  if (f->tokens > cap) f->tokens = cap;
  f->refilled_at = now;
}

static int rate_ok(const hg_flow_t *f) { return f->lim.rate_milli <= 0 || f->tokens >= 1.0; }
static int slot_ok(const hg_flow_t *f) { return f->lim.max_concurrency <= 0 || f->taken < (size_t)f->lim.max_concurrency; }

/* When the bucket next holds the tokens worth waking for: one, or at a
 * high rate what 10 ms earn (at most the bucket), so that the held
 * deliveries go in small groups that share a load and a record job
 * instead of one store job each millisecond. */
static int64_t token_at(const hg_flow_t *f) {
  double want = (double)f->lim.rate_milli / 1000.0 / 100.0, cap = capacity(f);
  if (want > cap) want = cap;
  if (want < 1.0) want = 1.0;
  double need = want - f->tokens;
  if (need <= 0) return f->refilled_at;
  return f->refilled_at + (int64_t)(need * 1e6 / (double)f->lim.rate_milli) + 1;
}

static void take(hg_flow_t *f) {
  f->taken++;
  if (f->lim.rate_milli > 0) f->tokens -= 1.0;
}

static hg_flow_t *flow_new(hg_throttle_t *t, const char *id, int64_t now) {
  hg_flow_t *f = calloc(1, sizeof(*f));
  if (f == NULL) return NULL;
  hg_copy(f->id, sizeof(f->id), id);
  f->refilled_at = now;
  f->tokens = -1; /* filled by set_limits */
  hg_list_init(&f->waiting);
  hg_list_push(&t->all, &f->all);
  size_t b = flow_bucket(id);
  f->next = t->buckets[b];
  t->buckets[b] = f;
  return f;
}

static void flow_free(hg_throttle_t *t, hg_flow_t *f) {
  for (hg_flow_t **p = &t->buckets[flow_bucket(f->id)]; *p; p = &(*p)->next) {
    if (*p == f) {
      *p = f->next;
      break;
    }
  }
  hg_list_del(&f->all);
  hg_list_del(&f->waiting);
  free(f->q);
  free(f);
}

/* The limits as the latest load read them: a PATCH takes effect with the
 * next delivery of that webhook loaded. */
static void set_limits(hg_throttle_t *t, hg_flow_t *f, const hg_flow_limits_t *lim) {
  int fresh = f->tokens < 0;
  if (!fresh && f->lim.rate_milli == lim->rate_milli && f->lim.max_concurrency == lim->max_concurrency) return;
  f->lim = *lim;
  double cap = capacity(f);
  if (fresh || f->tokens > cap) f->tokens = cap;
  if (f->n > 0) t->dirty = 1; /* a looser limit may let held ones go */
}

static int push_held(hg_throttle_t *t, hg_flow_t *f, int64_t seq) {
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 16;
    int64_t *q = malloc(cap * sizeof(*q));
    if (q == NULL) return HG_ENOMEM;
    for (size_t i = 0; i < f->n; i++) q[i] = f->q[(f->head + i) % f->cap];
    free(f->q);
    f->q = q;
    f->cap = cap;
    f->head = 0;
  }
  if (set_add(t, seq) != 0) return HG_ENOMEM;
  f->q[(f->head + f->n++) % f->cap] = seq;
  if (hg_list_empty(&f->waiting)) hg_list_push(&t->waiting, &f->waiting);
  return 0;
}

static int64_t pop_held(hg_throttle_t *t, hg_flow_t *f) {
  int64_t seq = f->q[f->head];
  f->head = (f->head + 1) % f->cap;
  f->n--;
  set_del(t, seq);
  if (f->n == 0) hg_list_del(&f->waiting);
  return seq;
}

/* Drops flows with nothing open, nothing held and a full bucket (their
 * state is a new flow's), at most once per SWEEP_MS. */
static void sweep(hg_throttle_t *t, int64_t now) {
  if (now - t->swept_at < SWEEP_MS) return;
  t->swept_at = now;
  hg_list_t *l, *tmp;
  HG_LIST_EACH_SAFE(l, tmp, &t->all) {
    hg_flow_t *f = HG_CONTAINER(l, hg_flow_t, all);
    refill(f, now);
    if (f->taken == 0 && f->n == 0 && (f->lim.rate_milli <= 0 || f->tokens >= capacity(f))) flow_free(t, f);
  }
}

/* --- public -------------------------------------------------------------------- */

hg_throttle_t *hg_throttle_new(void) {
  hg_throttle_t *t = calloc(1, sizeof(*t));
  if (t == NULL) return NULL;
  hg_list_init(&t->all);
  hg_list_init(&t->waiting);
  t->wake_at = INT64_MAX;
  return t;
}

void hg_throttle_free(hg_throttle_t *t) {
  if (t == NULL) return;
  while (!hg_list_empty(&t->all)) flow_free(t, HG_CONTAINER(t->all.next, hg_flow_t, all));
  free(t->set);
  free(t);
}

int hg_throttle_admit(hg_throttle_t *t, const char *webhook_id, const hg_flow_limits_t *lim, int64_t seq, int64_t now,
                      hg_flow_t **flow) {
  *flow = NULL;
  sweep(t, now);
  hg_flow_t *f = flow_find(t, webhook_id);
  if (f == NULL) {
    if (lim->rate_milli <= 0 && lim->max_concurrency <= 0) return HG_THROTTLE_GO;
    if ((f = flow_new(t, webhook_id, now)) == NULL) return HG_ENOMEM;
  }
  set_limits(t, f, lim);
  if (f->n > 0 && set_has(t, seq)) return HG_THROTTLE_HELD;
  refill(f, now);
  /* First in, first out: nothing overtakes a held delivery of its webhook. */
  if (f->n == 0 && slot_ok(f) && rate_ok(f)) {
    take(f);
    *flow = f;
    return HG_THROTTLE_GO;
  }
  if (push_held(t, f, seq) != 0) return HG_ENOMEM;
  /* Counted by what holds it: its webhook's slots, its bucket, or (both
   * free, the held ones ahead about to go) the limit the webhook has. */
  int verdict = !slot_ok(f)                    ? HG_THROTTLE_CONCURRENCY
                : !rate_ok(f)                  ? HG_THROTTLE_RATE
                : f->lim.max_concurrency > 0 ? HG_THROTTLE_CONCURRENCY
                                               : HG_THROTTLE_RATE;
  if (verdict == HG_THROTTLE_RATE && f->lim.rate_milli > 0 && slot_ok(f)) {
    int64_t at = token_at(f);
    if (at < t->wake_at) t->wake_at = at;
  } else if (slot_ok(f) && rate_ok(f)) {
    t->dirty = 1; /* held behind others that may go now */
  }
  hg_metrics.deliveries_throttled[verdict == HG_THROTTLE_RATE ? 0 : 1]++;
  return verdict;
}

void hg_throttle_limits(hg_throttle_t *t, const char *webhook_id, const hg_flow_limits_t *lim) {
  hg_flow_t *f = flow_find(t, webhook_id);
  if (f != NULL) set_limits(t, f, lim);
}

int hg_throttle_next(hg_throttle_t *t, int64_t now, int64_t *seq, hg_flow_t **flow) {
  if (hg_list_empty(&t->waiting)) {
    t->dirty = 0;
    t->wake_at = INT64_MAX;
    return 0;
  }
  if (!t->dirty && now < t->wake_at) return 0;
  int64_t wake = INT64_MAX;
  hg_list_t *l, *tmp;
  HG_LIST_EACH_SAFE(l, tmp, &t->waiting) {
    hg_flow_t *f = HG_CONTAINER(l, hg_flow_t, waiting);
    refill(f, now);
    if (!slot_ok(f)) continue; /* until hg_throttle_end */
    if (!rate_ok(f)) {
      int64_t at = token_at(f);
      if (at < wake) wake = at;
      continue;
    }
    *seq = pop_held(t, f);
    take(f);
    *flow = f;
    /* Webhooks take turns: this one goes to the back. */
    if (f->n > 0) {
      hg_list_del(&f->waiting);
      hg_list_push(&t->waiting, &f->waiting);
    }
    t->dirty = 1; /* look again: the rest were not all looked at */
    return 1;
  }
  t->dirty = 0;
  t->wake_at = wake;
  return 0;
}

int64_t hg_throttle_due(const hg_throttle_t *t) {
  if (hg_list_empty(&t->waiting)) return INT64_MAX;
  return t->dirty ? 0 : t->wake_at;
}

int hg_throttle_end(hg_throttle_t *t, hg_flow_t *f) {
  if (f == NULL) return 0;
  if (f->taken > 0) f->taken--;
  if (f->n > 0 && slot_ok(f)) {
    t->dirty = 1;
    return 1;
  }
  return 0;
}

int hg_throttle_holds(const hg_throttle_t *t, int64_t seq) { return t->held > 0 && set_has(t, seq); }

size_t hg_throttle_held(const hg_throttle_t *t) { return t->held; }
