/* app.h: the running gateway: loop, config, server, router, store, and the
 * state the API handlers share. */
#ifndef HG_APP_H
#define HG_APP_H

#include "config/config.h"
#include "net/http_server.h"
#include "net/router.h"
#include "store/store.h"

#include <uv.h>

typedef struct hg_keycache hg_keycache_t;
typedef struct hg_event_types hg_event_types_t;
typedef struct hg_dispatcher hg_dispatcher_t;
typedef struct hg_lua hg_lua_t;
typedef struct hg_subs hg_subs_t;

typedef struct hg_app {
  uv_loop_t *loop;
  const hg_config_t *cfg;
  hg_http_server_t *server;
  hg_router_t *router;
  hg_store_t *store;
  struct hg_intake *intake; /* NULL: every publish is answered from the store */
  /* Events answered from the intake log (api_events.c). */
  uint64_t intake_hold_lsn;   /* the lowest record whose store job failed and is retried (0: none) */
  size_t intake_retrying;     /* such records; log space is released only below intake_hold_lsn */
  size_t intake_unapplied;    /* answered from the log, not yet stored */
  size_t intake_unapplied_bytes;
  struct intake_retry *intake_retries; /* retry timers, closed at shutdown */
  int intake_down;            /* the log failed: every publish takes the store's path */
  hg_dispatcher_t *dispatcher;
  hg_subs_t *subs; /* the subscription index (loop thread) */
  hg_keycache_t *keys;
  hg_event_types_t *event_types;
  hg_lua_t *lua; /* the current VM generation (NULL: none) */
  unsigned char admin_key_hash[32];
  int has_admin_key;
  /* The key Lua's management calls use (random per process, never shown). */
  char internal_key[64];
  unsigned char internal_key_hash[32];
  uv_signal_t sig_term, sig_int, sig_hup;
  int stopping; /* 0 running, 1 draining, 2 stopped */
  int exit_code;
} hg_app_t;

/* Runs the gateway with cfg until SIGTERM/SIGINT (graceful: stop accepting,
 * finish requests in flight, close the store, return 0) or a second signal
 * (immediate exit). Returns the process exit code. */
int hg_app_run(const hg_config_t *cfg);

/* The request handler: routes, then Lua routes, then 404. Also the target
 * of internal subrequests. */
void hg_app_handle(hg_http_req_t *req, void *app);

/* Registers every route on app->router (used by serve and by `routes`). */
int hg_app_add_routes(hg_app_t *app);

#endif
