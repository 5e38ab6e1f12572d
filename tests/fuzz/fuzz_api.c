/* fuzz_api.c: the management and ingest API, end to end in-process: the
 * router, authorization, every handler and a real SQLite store (see
 * fuzz_app.h).
 *
 * Input: up to 16 requests, separated by a line "~~~". Each starts with a
 * line "KEY METHOD TARGET" and the rest is its JSON body:
 *   KEY     0..4 a key the app knows (fuzz_app.h), "-" no Authorization
 *           header, anything else sent as "Bearer KEY";
 *   TARGET  "{wh}" and "{dl}" in it become the last webhook and delivery
 *           ids seen in an answer, so that requests can reach the objects
 *           earlier ones made.
 * The app lives for the whole run, so state builds up across inputs.
 *
 * Checked, besides memory safety, leaks and UB: every request is answered
 * exactly once, never 500, and with a JSON object ({"error":{type,
 * message,details}} for 4xx) (hgf_check_answer).
 *
 * Not sent: test sends, replays and resuming delivery, which would make
 * the dispatcher connect to the URLs the fuzzer gave (DNS, network). */
#define _GNU_SOURCE /* memmem */
#include "fuzz_app.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REQUESTS 16

static int sends(const char *target) {
  char path[512];
  size_t n = strcspn(target, "?");
  if (n >= sizeof(path)) n = sizeof(path) - 1;
  memcpy(path, target, n);
  path[n] = '\0';
  while (n > 0 && path[n - 1] == '/') path[--n] = '\0';
  static const char *const ends[] = {"/test", "/replay", "/resume"};
  for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
    size_t el = strlen(ends[i]);
    if (n >= el && strcmp(path + n - el, ends[i]) == 0) return 1;
  }
  return 0;
}

static void one(char *req, size_t len) {
  char *nl = memchr(req, '\n', len);
  size_t line_len = nl ? (size_t)(nl - req) : len;
  char line[1024];
  if (line_len >= sizeof(line)) return;
  memcpy(line, req, line_len);
  line[line_len] = '\0';
  const char *body = nl ? nl + 1 : "";
  size_t body_len = nl ? len - line_len - 1 : 0;
  char *key = strtok(line, " ");
  char *method = strtok(NULL, " ");
  char *target = strtok(NULL, " ");
  if (key == NULL || method == NULL || target == NULL) return;
  char auth[600];
  if (strlen(key) == 1 && key[0] >= '0' && key[0] < '0' + HGF_N_KEYS) snprintf(auth, sizeof(auth), "%s", hgf_auth((size_t)(key[0] - '0')));
  else if (strcmp(key, "-") == 0) auth[0] = '\0';
  else snprintf(auth, sizeof(auth), "Bearer %s", key);
  char t[2048];
  hgf_expand(target, t, sizeof(t));
  if (sends(t)) return;
  hgf_answer_t ans;
  if (hgf_request(method, t, auth, body, body_len, &ans) != 0) return; /* a method or target it refuses */
  hgf_check_answer(method, t, &ans);
  hgf_note_ids(&ans);
  free(ans.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hgf_app();
  char *text = malloc(size + 1);
  if (text == NULL) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char *p = text, *end = text + size;
  for (int i = 0; i < MAX_REQUESTS && p <= end; i++) {
    char *sep = memmem(p, (size_t)(end - p), "\n~~~\n", 5);
    size_t n = sep ? (size_t)(sep - p) : (size_t)(end - p);
    one(p, n);
    if (sep == NULL) break;
    p = sep + 5;
  }
  free(text);
  return 0;
}
