/* fuzz_app.h: the gateway's app, built for the fuzz harnesses.
 *
 * The same parts hg_app_run assembles (config defaults, event types, a real
 * SQLite store and intake log in a temp dir, the subscription index, the
 * dispatcher, a Lua generation, the router with every route) on a loop of
 * this thread, without listening sockets or signal handlers. Requests go in
 * through hg_http_virtual, the entry point the Lua API's subrequests use,
 * so each one runs the real router, authorization and handlers.
 *
 * Delivery is paused: nothing is sent anywhere. */
#ifndef HG_FUZZ_APP_H
#define HG_FUZZ_APP_H

#include "app.h"

#include <stddef.h>

/* Keys the app knows, by index: 0 the admin (bootstrap) key, then keys
 * created in the store: webhooks:read; webhooks:write limited to org_a;
 * events:publish limited to org_a; every scope limited to org_b. */
#define HGF_N_KEYS 5

typedef struct hgf_answer {
  int status;
  char *body; /* malloc'd, NUL-terminated; free it */
  size_t body_len;
} hgf_answer_t;

/* Builds the app once per process (aborts on failure: the harness cannot
 * run without it). Returns it. */
hg_app_t *hgf_app(void);

/* "Bearer <key i>" for i < HGF_N_KEYS. */
const char *hgf_auth(size_t i);

/* Runs one request through the app and the loop until it is answered.
 * method must be one hg_http_virtual
 * takes; target starts with '/'. Returns 0 and fills ans, or the error
 * hg_http_virtual returned. */
int hgf_request(const char *method, const char *target, const char *authorization, const char *body,
                size_t body_len, hgf_answer_t *ans);

/* Checks what every API answer must be: a status in 100..599, never 500
 * (the store is healthy: a 500 is a bug), and a body that is one JSON
 * object. Aborts with a message otherwise. */
void hgf_check_answer(const char *method, const char *target, const hgf_answer_t *ans);

/* Replaces "{wh}" in target with the id of the last webhook created and
 * "{dl}" with the last delivery id seen in an answer; out has cap bytes. */
void hgf_expand(const char *target, char *out, size_t cap);

/* Notes ids ("wh_...", "del_...") in an answer, for hgf_expand. */
void hgf_note_ids(const hgf_answer_t *ans);

#endif
