/* runtime.h: the Lua 5.4 runtime — one VM generation, its plugins, and the
 * pipeline phases they run in.
 *
 * A generation is built from hg_lua_opts_t (plugin folders, global
 * bindings, limits, and the few things it uses of the gateway: the loop,
 * the HTTP client, the API for management calls; it sees nothing else of
 * the app) and is immutable afterwards; a reload builds a new one and
 * swaps it in only if every plugin loaded and validated. Runs hold a
 * reference, so work in flight finishes on the generation it started on.
 *
 * Pure phases (transform, sign, retry) run synchronously and may not do
 * I/O; the others run as coroutines that yield to the loop on I/O and when
 * their CPU slice is used up. A script error fails only its run, is logged
 * with plugin, phase, file:line and a traceback, and is counted. */
#ifndef HG_LUA_RUNTIME_H
#define HG_LUA_RUNTIME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct hg_client;
typedef struct hg_lua hg_lua_t;

typedef enum {
  HG_PHASE_INGEST = 0,
  HG_PHASE_ROUTE,
  HG_PHASE_TRANSFORM,
  HG_PHASE_SIGN,
  HG_PHASE_DELIVER,
  HG_PHASE_RETRY,
  HG_PHASE_AFTER,
  HG_PHASE_COUNT
} hg_phase_t;

const char *hg_phase_name(hg_phase_t p);

/* An internal subrequest's answer: the HTTP status and body (valid only
 * during the call: copy what you keep). */
typedef void (*hg_lua_subrequest_cb)(int status, const char *body, size_t body_len, void *ud);

/* Runs method + target ("/v1/webhooks/...") with a JSON body (body_len
 * bytes, may be 0) against the gateway's API as the gateway itself (the
 * management calls of hookgate.webhooks, deliveries and events). cb runs
 * exactly once, inside this call (an answer given at once, such as a
 * validation error) or later on the loop. Returns 0, or a negative code
 * and cb never runs. ud: hg_lua_opts_t.subrequest_ud. */
typedef int (*hg_lua_subrequest_fn)(void *ud, const char *method, const char *target, const char *body,
                                    size_t body_len, hg_lua_subrequest_cb cb, void *cb_ud);

/* What a generation needs from the gateway. Strings are borrowed and read
 * only by hg_lua_new; client and subrequest_ud must outlive every
 * generation built with them. */
typedef struct hg_lua_opts {
  uv_loop_t *loop;
  const char *lib_path;               /* folder holding hookgate/schema.lua and runtime.lua */
  const char *const *plugin_paths;    /* folders of plugins/<name>/init.lua, loaded in order */
  size_t n_plugin_paths;
  const char *plugins_json;           /* global bindings {"name": {config} or true}, or NULL */
  size_t memory;                      /* bytes the VM may hold */
  size_t run_memory;                  /* bytes one run may add */
  size_t shared_memory;               /* bytes hookgate.shared may hold, keys included */
  uint64_t cpu_slice_ms;              /* a coroutine yields after this much CPU */
  uint64_t cpu_budget_ms;             /* a run fails past this much CPU */
  /* Where the HTTP client hookgate.http.request sends with is kept (the
   * deliveries' client): read at each use, *client NULL once it closes.
   * NULL: no client (http.request fails). */
  struct hg_client *const *client;
  hg_lua_subrequest_fn subrequest;    /* NULL: the management calls fail */
  void *subrequest_ud;
} hg_lua_opts_t;

/* Builds a generation from opts. On failure returns HG_ECONFIG and
 * *errors (a new JSON array of strings, one per problem, each naming
 * plugin and file:line or field), or HG_ENOMEM. */
int hg_lua_new(hg_lua_t **out, const hg_lua_opts_t *opts, json_t **errors);

void hg_lua_ref(hg_lua_t *rt);
/* Drops a reference; the generation is freed when none is left. */
void hg_lua_unref(hg_lua_t *rt);

/* 1 if a plugin bound globally, or in bindings (per-webhook JSON text, may
 * be NULL), defines phase. Cheap: callers use it to skip the Lua path. */
int hg_lua_has(hg_lua_t *rt, hg_phase_t phase, const char *bindings);

/* Runs a pure phase now: arg (a JSON object, modified in place by the
 * plugins: a new value replaces *arg) goes to each bound plugin; *result
 * gets the first non-nil value a plugin returned (a new reference, or
 * NULL). Returns 0, or HG_EINVAL with "plugin P (phase): file:line: msg" in
 * err when a script failed. */
int hg_lua_call(hg_lua_t *rt, hg_phase_t phase, const char *bindings, json_t **arg, json_t **result, char *err,
                size_t errlen);

/* The delivery a transform or sign plugin sees, without JSON in between
 * (this runs for every delivery). url and body may be the caller's
 * (borrowed, own_url/own_body clear): a plugin's new value replaces them
 * malloc'd, with the flag set. headers and skip are malloc'd and replaced
 * by the plugins' versions. */
typedef struct hg_lua_header {
  char *name, *value;
} hg_lua_header_t;

typedef struct hg_lua_delivery {
  const char *id, *webhook_id, *event_id, *event_type; /* borrowed */
  int attempt;
  const char *url;
  const char *body;
  size_t body_len;
  int own_url, own_body; /* url, body malloc'd here: freed by hg_lua_delivery_close */
  hg_lua_header_t *headers;
  size_t n_headers;
  char *skip; /* set by a plugin: the reason this delivery is not sent */
} hg_lua_delivery_t;

void hg_lua_delivery_close(hg_lua_delivery_t *d);

/* Runs transform or sign over d. Returns 0, or HG_EINVAL with "plugin P
 * (phase): file:line: msg" in err (a script error, or url/body no longer
 * strings), or HG_ENOMEM. */
int hg_lua_call_delivery(hg_lua_t *rt, hg_phase_t phase, const char *bindings, hg_lua_delivery_t *d, char *err,
                         size_t errlen);

/* Completion of an async phase: status 0 (arg holds the plugins'
 * changes; result the first non-nil value returned, or NULL; result2 the
 * second value) or HG_EINVAL (script error, message in err). The callback
 * owns nothing: copy what it keeps. */
typedef void (*hg_lua_done_fn)(int status, json_t *arg, json_t *result, json_t *result2, const char *err, void *ud);

/* Runs an I/O-capable phase (ingest, route, deliver, after) as a coroutine;
 * done runs later, never inside this call. Takes a reference to arg. */
int hg_lua_call_async(hg_lua_t *rt, hg_phase_t phase, const char *bindings, json_t *arg, hg_lua_done_fn done,
                      void *ud);

/* The event a route plugin sees, without JSON in between (this runs for
 * every event). All borrowed; data is the raw JSON text of the event's
 * data, decoded only if a plugin reads event.data. org may be NULL. */
typedef struct hg_lua_event {
  const char *id, *type, *org;
  const char *data;
  size_t data_len;
} hg_lua_event_t;

/* Runs the route phase for ev as a coroutine, with arg = {event, targets}
 * (targets: a JSON array of webhook ids, borrowed). done runs later, never
 * inside this call: status 0 with result = the plugins' arg.targets (NULL
 * if they left nothing JSON can hold there), or HG_EINVAL (script error,
 * message in err); arg and result2 are NULL. Returns HG_ESTATE once the
 * generation is stopped. */
int hg_lua_route_event(hg_lua_t *rt, const hg_lua_event_t *ev, json_t *targets, hg_lua_done_fn done, void *ud);

/* 1 if a globally bound plugin serves method + path. */
int hg_lua_has_route(hg_lua_t *rt, const char *method, const char *path);

/* Runs the Lua route for method + path with req (a JSON object: method,
 * path, query, headers, body) as a coroutine; done gets the handler's
 * answer table as result. */
int hg_lua_call_route(hg_lua_t *rt, const char *method, const char *path, json_t *req, hg_lua_done_fn done,
                      void *ud);

/* Validates per-webhook bindings {"plugins":[...], "transform": "..."}:
 * returns NULL if fine, else a new JSON array of {field, message}. */
json_t *hg_lua_check_bindings(hg_lua_t *rt, json_t *plugins, json_t *transform);

/* A copy of per-webhook plugins [{name, config}] with secret fields
 * redacted, for API answers (new reference). */
json_t *hg_lua_redact_bindings(hg_lua_t *rt, json_t *plugins);

/* The effective global plugin order with redacted configs, and the names
 * of the plugins available for per-webhook binding. New references. */
json_t *hg_lua_describe(hg_lua_t *rt);

/* Counters for /metrics: script errors by plugin and phase. */
typedef void (*hg_lua_error_count_fn)(const char *plugin, const char *phase, uint64_t n, void *ud);
void hg_lua_each_error_count(hg_lua_t *rt, hg_lua_error_count_fn cb, void *ud);
/* Counts a script error that ran outside the VM (a webhook's transform,
 * in the sandbox) with the others. */
void hg_lua_count_error(const char *plugin, const char *phase);

/* Starts the generation's timers (plugins' `timers`); stops them and
 * refuses new runs (a reload retires the generation this way: runs in
 * flight go on). */
void hg_lua_start(hg_lua_t *rt);
void hg_lua_stop(hg_lua_t *rt);

/* Stops, and wakes the runs sleeping in hookgate.sleep so that shutdown
 * does not wait out their sleep (sleep returns at once from then on). */
void hg_lua_shutdown(hg_lua_t *rt);

/* Counters for /metrics: calls of each phase (route once per event,
 * transform and sign once per delivery attempt, ...) and the time the loop
 * thread spent in them: building the argument, running the bound plugins,
 * reading the result back. Time a run waits on I/O or in the queue is not
 * counted. Process-wide (they outlive a reload's VM generations). */
void hg_lua_phase_stats(hg_phase_t phase, uint64_t *calls, uint64_t *ns);

/* Memory the VM holds, in bytes. */
size_t hg_lua_memory(hg_lua_t *rt);

#endif
