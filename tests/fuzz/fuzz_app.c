/* fuzz_app.c: the gateway's app for the fuzz harnesses (see fuzz_app.h).
 * Mirrors hg_app_run's start-up, minus sockets and signals. */
#include "fuzz_app.h"

#include "api/api.h"
#include "base/common.h"
#include "base/crypto.h"
#include "pipeline/dispatcher.h"
#include "pipeline/event_types.h"
#include "pipeline/ingest.h"
#include "base/ids.h"
#include "store/keys.h"
#include "base/log.h"
#include "lua/runtime.h"
#include "net/http_client.h"
#include "base/metrics.h"
#include "pipeline/subs.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uv_loop_t loop;
static hg_config_t cfg;
static hg_app_t app;
static int built;
static char auth[HGF_N_KEYS][16 + HG_KEY_MAX];
static char last_wh[HG_ID_MAX] = "wh_01jd0000000000000000000000";
static char last_dl[HG_ID_MAX] = "del_01jd0000000000000000000000";

static void die(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_app: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

typedef struct job {
  int done, status;
  unsigned scopes;
  const char *org;
  char key[HG_KEY_MAX];
} job_t;

static void job_done(int status, void *ud) {
  job_t *j = ud;
  j->status = status;
  j->done = 1;
}

static int key_work(hg_db_t *db, void *ud) {
  job_t *j = ud;
  return hg_keys_create(db, j->scopes, j->org, j->key, sizeof(j->key), NULL);
}

static int subs_work(hg_db_t *db, void *ud) {
  (void)ud;
  return hg_subs_load(app.api.subs, db); }

static int run_job(hg_store_work_fn work, job_t *j) {
  if (hg_store_submit(app.api.store, work, job_done, j) != 0) return -1;
  while (!j->done) uv_run(&loop, UV_RUN_ONCE);
  return j->status;
}

/* A directory of our own for the store: under HG_FUZZ_TMP (run-one and
 * scripts/fuzz point it at a dir they remove, since a crash skips atexit),
 * else on tmpfs when there is one (the intake log syncs every turn).
 * Removed at exit. */
static char dir[256];

static void remove_dir(void) {
  char cmd[300];
  if (dir[0] == '\0') return;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "fuzz_app: could not remove %s\n", dir);
}

hg_app_t *hgf_app(void) {
  if (built) return &app;
  built = 1;
  char err[512] = "";
  const char *tmp = getenv("HG_FUZZ_TMP") ? getenv("HG_FUZZ_TMP") : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
  snprintf(dir, sizeof(dir), "%s/hg-fuzz-app.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(dir) == NULL) die("mkdtemp", dir);
  atexit(remove_dir);
  /* Errors only, and not in the fuzzer's output: internal errors fail the
   * run through hgf_check_answer instead. */
  hg_log_setup(HG_LOG_ERROR, HG_LOG_LOGFMT, 2);
  (void)hg_store_global_init();
  hg_metrics_init();
  if (hg_crypto_init() != 0) die("crypto init", NULL);
  if (hg_config_load(&cfg, NULL, err, sizeof(err)) != 0) die("config", err);
  char store[300];
  snprintf(store, sizeof(store), "%s/hookgate.db", dir);
  free(cfg.store);
  cfg.store = strdup(store);
  cfg.delivery_paused = 1;
  cfg.access_log = 0;
  /* Small enough that the fuzzer reaches the limit. */
  cfg.max_event_data = 4096;
  static char admin[] = "hg_fuzz_admin_key_0123456789";
  cfg.admin_key = strdup(admin);
  if (cfg.store == NULL || cfg.admin_key == NULL) die("out of memory", NULL);

  memset(&app, 0, sizeof(app));
  app.cfg = app.api.cfg = &cfg;
  app.loop = &loop;
  if (uv_loop_init(&loop) != 0) die("uv_loop_init", NULL);
  hg_sha256(cfg.admin_key, strlen(cfg.admin_key), app.api.admin_key_hash);
  app.api.has_admin_key = 1;
  if (hg_event_types_new(&app.api.event_types, &cfg.event_types, err, sizeof(err)) != 0) die("event types", err);
  if (hg_store_open(&app.api.store, &loop, cfg.store, err, sizeof(err)) != 0) die("store", err);
  if ((app.api.subs = hg_subs_new()) == NULL) die("subs", NULL);
  job_t sj = {0};
  if (run_job(subs_work, &sj) != 0) die("subs load", NULL);
  hg_client_opts_t copts;
  hg_client_opts_default(&copts);
  copts.loop = &loop;
  if (hg_client_new(&app.client, &copts, err, sizeof(err)) != 0) die("client", err);
  if (hg_dispatcher_new(&app.api.dispatcher, &loop, app.api.store, &cfg, &app.api.lua, app.api.subs, app.client) != 0)
    die("dispatcher", NULL);
  char intake_dir[320];
  snprintf(intake_dir, sizeof(intake_dir), "%s-intake", cfg.store);
  hg_ingest_opts_t iopts = {.loop = &loop, .store = app.api.store, .intake_dir = intake_dir,
                            .first_delay_ms = (int64_t)(cfg.schedule[0] * 1000.0), .subs = app.api.subs,
                            .dispatcher = app.api.dispatcher};
  if (hg_ingest_new(&app.api.ingest, &iopts, err, sizeof(err)) != 0) die("intake", err);
  unsigned char raw[24];
  if (hg_random(raw, sizeof(raw)) != 0) die("random", NULL);
  memcpy(app.internal_key, "hg_internal_", 12);
  hg_hex_encode(raw, sizeof(raw), app.internal_key + 12);
  hg_sha256(app.internal_key, strlen(app.internal_key), app.api.internal_key_hash);
  app.api.has_internal_key = 1;
  json_t *lua_errors = NULL;
  hg_lua_opts_t lopts = hg_app_lua_opts(&cfg, &app);
  if (hg_lua_new(&app.api.lua, &lopts, &lua_errors) != 0) die("lua", NULL);
  if ((app.router = hg_router_new()) == NULL || hg_app_add_routes(&app) != 0) die("router", NULL);
  if (hg_dispatcher_start(app.api.dispatcher) != 0) die("dispatcher start", NULL);
  hg_lua_start(app.api.lua);

  snprintf(auth[0], sizeof(auth[0]), "Bearer %s", admin);
  static const struct {
    unsigned scopes;
    const char *org;
  } keys[HGF_N_KEYS - 1] = {
      {HG_SCOPE_WEBHOOKS_READ, NULL},
      {HG_SCOPE_WEBHOOKS_WRITE, "org_a"},
      {HG_SCOPE_EVENTS_PUBLISH, "org_a"},
      {HG_SCOPE_ALL, "org_b"},
  };
  for (size_t i = 0; i < HGF_N_KEYS - 1; i++) {
    job_t kj = {0};
    kj.scopes = keys[i].scopes;
    kj.org = keys[i].org;
    if (run_job(key_work, &kj) != 0) die("create key", NULL);
    snprintf(auth[i + 1], sizeof(auth[i + 1]), "Bearer %s", kj.key);
  }
  return &app;
}

const char *hgf_auth(size_t i) { return i < HGF_N_KEYS ? auth[i] : ""; }

typedef struct wait {
  int answered;
  hgf_answer_t *ans;
} wait_t;

static void on_answer(int status, const char *body, size_t body_len, void *ud) {
  wait_t *w = ud;
  if (w->answered++) die("a request was answered twice", NULL);
  w->ans->status = status;
  w->ans->body_len = body_len;
  if ((w->ans->body = malloc(body_len + 1)) == NULL) die("out of memory", NULL);
  if (body_len) memcpy(w->ans->body, body, body_len);
  w->ans->body[body_len] = '\0';
}

int hgf_request(const char *method, const char *target, const char *authorization, const char *body,
                size_t body_len, hgf_answer_t *ans) {
  hgf_app();
  wait_t w = {0, ans};
  memset(ans, 0, sizeof(*ans));
  int r = hg_http_virtual(method, target, authorization, body, body_len, hg_app_handle, &app, on_answer, &w);
  if (r != 0) return r;
  /* The loop always has the dispatcher's and the store's handles: ONCE
   * waits for the next completion. */
  while (!w.answered) uv_run(&loop, UV_RUN_ONCE);
  /* Hand the store what the answer left queued (the store jobs of events
   * answered from the intake log): they run while the next input starts. */
  hg_store_flush(app.api.store);
  uv_run(&loop, UV_RUN_NOWAIT);
  return 0;
}

void hgf_check_answer(const char *method, const char *target, const hgf_answer_t *ans) {
  if (ans->status < 100 || ans->status > 599 || ans->status == 500) {
    fprintf(stderr, "%s %s answered %d: %s\n", method, target, ans->status, ans->body);
    die("an API answer with a bad status", NULL);
  }
  /* /metrics answers Prometheus text, the console its files (HTML, CSS,
   * JavaScript; its errors are JSON like the API's); HEAD and 204 answer
   * nothing. */
  if (strncmp(target, "/metrics", 8) == 0 || ans->body_len == 0) return;
  if (strncmp(target, "/console", 8) == 0 && ans->status < 400) return;
  json_error_t jerr;
  json_t *doc = json_loadb(ans->body, ans->body_len, 0, &jerr);
  if (doc == NULL || !json_is_object(doc)) {
    fprintf(stderr, "%s %s answered %d with a body that is not a JSON object: %s\n", method, target, ans->status,
            ans->body);
    die("an API answer that is not JSON", NULL);
  }
  if (ans->status >= 400) {
    json_t *e = json_object_get(doc, "error");
    if (!json_is_string(json_object_get(e, "type")) || !json_is_string(json_object_get(e, "message")) ||
        !json_is_array(json_object_get(e, "details"))) {
      fprintf(stderr, "%s %s answered %d without an error object: %s\n", method, target, ans->status, ans->body);
      die("an error answer without {error:{type,message,details}}", NULL);
    }
  }
  json_decref(doc);
}

/* Keeps the last valid id with prefix ("wh_") that appears quoted in body. */
static void note(const char *body, const char *prefix, char out[HG_ID_MAX]) {
  char quoted[16];
  snprintf(quoted, sizeof(quoted), "\"%s", prefix);
  size_t n = strlen(prefix) + HG_ID_BODY_LEN;
  for (const char *p = strstr(body, quoted); p != NULL; p = strstr(p + 1, quoted)) {
    char id[HG_ID_MAX];
    if (strnlen(p + 1, n) < n) return;
    memcpy(id, p + 1, n);
    id[n] = '\0';
    if (hg_id_valid(prefix, id)) memcpy(out, id, n + 1);
  }
}

void hgf_note_ids(const hgf_answer_t *ans) {
  if (ans->body == NULL) return;
  note(ans->body, "wh_", last_wh);
  note(ans->body, "del_", last_dl);
}

void hgf_expand(const char *target, char *out, size_t cap) {
  size_t o = 0;
  for (const char *p = target; *p && o + 1 < cap;) {
    const char *rep = strncmp(p, "{wh}", 4) == 0 ? last_wh : strncmp(p, "{dl}", 4) == 0 ? last_dl : NULL;
    if (rep != NULL) {
      size_t n = strlen(rep);
      if (o + n + 1 > cap) break;
      memcpy(out + o, rep, n);
      o += n;
      p += 4;
    } else {
      out[o++] = *p++;
    }
  }
  out[o] = '\0';
}
