/* test_console.c: core/console.c: which files of a folder load, and what
 * the two handlers answer (through the real router, as virtual requests). */
#include "console.h"

#include "base/common.h"
#include "hgtest.h"
#include "net/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void put(const char *name, const char *text) {
  char p[256];
  snprintf(p, sizeof(p), "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  CHECK(f != NULL);
  if (f == NULL) return;
  fputs(text, f);
  fclose(f);
}

static void cleanup(void) {
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  CHECK_EQ_INT(system(cmd), 0);
}

typedef struct answer {
  int status;
  char body[256];
} answer_t;

static void got(int status, const char *body, size_t len, void *ud) {
  answer_t *a = ud;
  a->status = status;
  snprintf(a->body, sizeof(a->body), "%.*s", (int)len, body);
}

static void dispatch(hg_http_req_t *req, void *ud) { hg_router_dispatch(ud, req); }

static answer_t get(hg_router_t *r, const char *target) {
  answer_t a = {0, ""};
  CHECK_EQ_INT(hg_http_virtual("GET", target, "", "", 0, dispatch, r, got, &a), 0);
  return a;
}

static hg_router_t *router_for(hg_console_t *c) {
  hg_router_t *r = hg_router_new();
  CHECK(r != NULL);
  CHECK_EQ_INT(hg_router_add(r, "GET", "/console", hg_console_index, c), 0);
  CHECK_EQ_INT(hg_router_add(r, "GET", "/console/{file}", hg_console_file, c), 0);
  return r;
}

static void loads_only_known_files(void) {
  char err[256] = "";
  put("index.html", "<!doctype html><title>x</title>");
  put("app.js", "export {};");
  put("style.css", "body{}");
  put(".hidden.js", "no");
  put("notes.txt", "no");
  put("we ird.js", "no");
  char p[256];
  snprintf(p, sizeof(p), "%s/sub.js", dir);
  CHECK_EQ_INT(mkdir(p, 0700), 0); /* a folder named like a file: skipped */
  snprintf(p, sizeof(p), "%s/pipe.js", dir);
  CHECK_EQ_INT(mkfifo(p, 0600), 0); /* a FIFO: skipped, without blocking */
  hg_console_t *c = NULL;
  CHECK_EQ_INT(hg_console_new(&c, dir, err, sizeof(err)), 0);
  CHECK_EQ_INT(hg_console_files(c), 3);
  hg_router_t *r = router_for(c);
  answer_t a = get(r, "/console");
  CHECK_EQ_INT(a.status, 200);
  CHECK_EQ_STR(a.body, "<!doctype html><title>x</title>");
  a = get(r, "/console/app.js");
  CHECK_EQ_INT(a.status, 200);
  CHECK_EQ_STR(a.body, "export {};");
  static const struct {
    const char *target;
    int status;
  } cases[] = {
      {"/console/.hidden.js", 404}, {"/console/notes.txt", 404},         {"/console/sub.js", 404},
      {"/console/pipe.js", 404},    {"/console/nope.js", 404},           {"/console/..", 400},
      {"/console/%2e%2e", 400},     {"/console/..%2fapp.js", 400},       {"/console/%2fetc%2fpasswd", 400},
      {"/console/a%5cb.js", 400},   {"/console/../console/app.js", 404},
  };
  for (size_t i = 0; i < HG_ARRAY_LEN(cases); i++) {
    a = get(r, cases[i].target);
    if (a.status != cases[i].status) fprintf(stderr, "  %s\n", cases[i].target);
    CHECK_EQ_INT(a.status, cases[i].status);
  }
  hg_router_free(r);
  hg_console_free(c);
}

static void off_is_404(void) {
  hg_router_t *r = router_for(NULL);
  CHECK_EQ_INT(get(r, "/console").status, 404);
  CHECK_EQ_INT(get(r, "/console/app.js").status, 404);
  hg_router_free(r);
}

static void refuses_a_folder_without_index(void) {
  char err[256] = "";
  hg_console_t *c = (hg_console_t *)1;
  CHECK_EQ_INT(hg_console_new(&c, "/nonexistent/console", err, sizeof(err)), HG_EIO);
  CHECK(c == NULL);
  CHECK(strstr(err, "/nonexistent/console") != NULL);
  char p[256];
  snprintf(p, sizeof(p), "%s/index.html", dir);
  CHECK_EQ_INT(unlink(p), 0);
  CHECK_EQ_INT(hg_console_new(&c, dir, err, sizeof(err)), HG_EINVAL);
  CHECK(strstr(err, "no index.html") != NULL);
  hg_console_free(NULL);
}

int main(void) {
  snprintf(dir, sizeof(dir), "/tmp/hg-test-console-XXXXXX");
  if (mkdtemp(dir) == NULL) return 2;
  RUN(loads_only_known_files);
  RUN(off_is_404);
  RUN(refuses_a_folder_without_index);
  cleanup();
  return HGT_DONE();
}
