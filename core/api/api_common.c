/* api_common.c: JSON bodies, validation answers and paging for the API. */
#include "api/api.h"

#include "base/common.h"
#include "base/crypto.h"
#include "base/ids.h"
#include "base/log.h"
#include "net/router.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int hg_api_is_json_type(const char *ct) {
  if (ct == NULL) return 0;
  while (*ct == ' ' || *ct == '\t') ct++;
  size_t n = strlen("application/json");
  if (strncasecmp(ct, "application/json", n) != 0) return 0;
  /* The media type ends here: only whitespace, then the end or parameters
   * (RFC 9110 8.3.1), may follow; "application/jsonx" is another type. */
  for (ct += n; *ct == ' ' || *ct == '\t'; ct++) {
  }
  return *ct == '\0' || *ct == ';';
}

static void utf8_clean(char *s);

json_t *hg_api_parse_body(hg_http_req_t *req, int empty_ok) {
  if (req->body_len == 0 && empty_ok) return json_object();
  if (!hg_api_is_json_type(hg_http_req_header(req, "content-type"))) {
    hg_http_respond_error(req, 415, "unsupported_media_type", "the body must be application/json", NULL);
    return NULL;
  }
  json_error_t jerr;
  /* Duplicate keys are refused: two values for one field is ambiguous. */
  json_t *doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
  /* jansson reads a NUL byte between tokens as nothing ({"a":1<NUL>}
   * parses), but the raw text is what gets stored and delivered: a NUL is
   * never valid JSON text. */
  const char *nul = memchr(req->body, '\0', req->body_len);
  if (doc != NULL && nul != NULL) {
    json_decref(doc);
    doc = NULL;
    jerr.position = (int)(nul - req->body);
    snprintf(jerr.text, sizeof(jerr.text), "NUL byte in the body");
  }
  if (doc == NULL) {
    /* jansson quotes the bytes it stopped at, which may not be UTF-8: a
     * message jansson cannot encode would turn this 400 into a 500. */
    utf8_clean(jerr.text);
    char msg[256];
    snprintf(msg, sizeof(msg), "malformed JSON at byte %d: %s", jerr.position, jerr.text);
    json_t *details = json_array();
    json_array_append_new(details, json_pack("{s:s,s:s,s:i}", "field", "body", "message", jerr.text,
                                             "offset", jerr.position));
    hg_http_respond_error(req, 400, "invalid_json", msg, details);
    return NULL;
  }
  if (!json_is_object(doc)) {
    json_decref(doc);
    hg_http_respond_error(req, 400, "invalid_json", "the body must be a JSON object", NULL);
    return NULL;
  }
  return doc;
}

/* Drops UTF-8 sequences cut short. Fields and messages quote the caller's
 * input (valid UTF-8: jansson checked it) cut to a byte count ("%.140s",
 * or a full buffer), which can split a character, at the end or inside
 * quotes; jansson refuses such a string and the detail would be lost. */
static void utf8_clean(char *s) {
  unsigned char *r = (unsigned char *)s, *w = r;
  while (*r) {
    int need = *r < 0x80 ? 0 : *r >= 0xF0 ? 3 : *r >= 0xE0 ? 2 : *r >= 0xC0 ? 1 : -1;
    int k = 0;
    while (k < need && (r[1 + k] & 0xC0) == 0x80) k++;
    if (need < 0 || k < need) {
      r++; /* a stray continuation byte, or a lead whose sequence was cut */
      continue;
    }
    for (int i = 0; i <= need; i++) *w++ = *r++;
  }
  *w = '\0';
}

void hg_api_detail(json_t *details, const char *field, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  utf8_clean(msg);
  char *fld = strdup(field);
  if (fld != NULL) utf8_clean(fld);
  json_array_append_new(details, json_pack("{s:s,s:s}", "field", fld ? fld : "?", "message", msg));
  free(fld);
}

void hg_api_validation_error(hg_http_req_t *req, json_t *details) {
  char msg[600];
  size_t n = json_array_size(details);
  json_t *first = json_array_get(details, 0);
  if (n == 1)
    snprintf(msg, sizeof(msg), "%s: %s", json_string_value(json_object_get(first, "field")),
             json_string_value(json_object_get(first, "message")));
  else
    snprintf(msg, sizeof(msg), "%zu fields are invalid", n);
  hg_http_respond_error(req, 422, "validation_error", msg, details);
}

void hg_api_forbidden_org(hg_http_req_t *req) {
  hg_http_respond_error(req, 403, "forbidden", "insufficient permissions for this organization", NULL);
}

int hg_api_refuse(hg_http_req_t *req, json_t **details, int forbidden_org) {
  if (json_array_size(*details) > 0) {
    hg_api_validation_error(req, *details);
    *details = NULL;
    return 1;
  }
  if (forbidden_org) {
    hg_api_forbidden_org(req);
    return 1;
  }
  return 0;
}

void hg_api_reject_unknown(json_t *obj, const char *const *allowed, json_t *details) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    int known = 0;
    for (const char *const *a = allowed; *a && !known; a++) known = strcmp(*a, key) == 0;
    if (!known) hg_api_detail(details, key, "unknown field");
  }
}

void hg_api_internal_error(hg_http_req_t *req, const char *what, int err) {
  if (err == HG_ENOSPC) {
    /* Not the gateway's fault and not for good: the client may try again
     * once an operator has made room. Nothing of the request was kept. */
    hg_log(HG_LOG_ERROR, "storage full", "what", what, "request_id", req->request_id, NULL);
    hg_http_req_add_header(req, "Retry-After", HG_API_STORAGE_FULL_RETRY_AFTER);
    hg_http_respond_error(req, 503, "storage_full",
                          "the gateway's storage is full; nothing was stored: try again later", NULL);
    return;
  }
  if (err == HG_EUNAVAIL) {
    /* The store's server cannot be reached (or the connection was lost):
     * the job's transaction is gone, so nothing of the request was kept,
     * and the store reconnects by itself. Warn level: it clears on its
     * own, and the store logs the cause (its address without password);
     * what the request carried is never logged. */
    hg_log(HG_LOG_WARN, "store unavailable", "what", what, "request_id", req->request_id, NULL);
    hg_http_req_add_header(req, "Retry-After", HG_API_STORE_UNAVAILABLE_RETRY_AFTER);
    hg_http_respond_error(req, 503, "store_unavailable",
                          "the store is unavailable: try again later (a change may have been kept if the connection was lost at its commit; retry with the same Idempotency-Key or id to be safe)", NULL);
    return;
  }
  if (err == HG_EBUSY) {
    /* A lock the store waited for was not free in time (PostgreSQL's
     * lock_timeout or a deadlock, e.g. two nodes storing events for the
     * same FIFO webhooks): the job's work was rolled back, nothing of the
     * request was kept, and trying again soon works. */
    hg_log(HG_LOG_WARN, "store busy", "what", what, "request_id", req->request_id, NULL);
    hg_http_req_add_header(req, "Retry-After", HG_API_STORE_UNAVAILABLE_RETRY_AFTER);
    hg_http_respond_error(req, 503, "store_busy",
                          "the store was busy (a lock was not free in time): nothing was stored; try again", NULL);
    return;
  }
  hg_log(HG_LOG_ERROR, "internal error", "what", what, "error", hg_strerror(err), "request_id", req->request_id,
         NULL);
  char msg[96];
  snprintf(msg, sizeof(msg), "internal error (request id %s)", req->request_id);
  hg_http_respond_error(req, 500, "internal_error", msg, NULL);
}

void hg_api_page_token(const char *last_id, char *out, size_t cap) {
  if (hg_base64url_encode((const unsigned char *)last_id, strlen(last_id), out, cap) < 0) out[0] = '\0';
}

int hg_api_page_token_parse(const char *token, char *out_id, size_t cap) {
  /* base64url without padding → standard base64 with padding. */
  size_t n = strlen(token);
  if (n == 0 || n > 128) return HG_EINVAL;
  char std[136];
  size_t i;
  for (i = 0; i < n; i++) {
    char c = token[i];
    if (c == '-') c = '+';
    else if (c == '_') c = '/';
    else if (c == '+' || c == '/' || c == '=') return HG_EINVAL;
    std[i] = c;
  }
  while (i % 4) std[i++] = '=';
  size_t len = 0;
  if (hg_base64_decode(std, i, (unsigned char *)out_id, cap - 1, &len) != 0) return HG_EINVAL;
  out_id[len] = '\0';
  /* A token names an id we issued: prefix_ + base32. */
  for (size_t k = 0; k < len; k++) {
    char c = out_id[k];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return HG_EINVAL;
  }
  return len > 0 ? 0 : HG_EINVAL;
}

int hg_api_page_params(hg_http_req_t *req, const char *prefix, int *page_size, char *after_id, size_t cap) {
  json_t *details = json_array();
  int bad = 0;
  *page_size = 25;
  after_id[0] = '\0';
  char *ps = hg_query_get(req->query, "pageSize", &bad);
  if (bad) hg_api_detail(details, "pageSize", "must be a whole number from 1 to 100");
  if (ps != NULL) {
    /* ASCII digits and nothing else: strtol would also take a sign, leading
     * spaces and a number followed by anything. */
    int v = 0;
    const char *c = ps;
    for (; *c >= '0' && *c <= '9'; c++)
      if (v <= 100) v = v * 10 + (*c - '0');
    if (c == ps || *c != '\0' || v < 1 || v > 100)
      hg_api_detail(details, "pageSize", "must be a whole number from 1 to 100");
    else
      *page_size = v;
    free(ps);
  }
  char *tok = hg_query_get(req->query, "pageToken", &bad);
  /* Our tokens only ever name an id of this list's kind; anything else was
   * not issued here and would silently page from an arbitrary point. */
  if (bad || (tok != NULL && *tok &&
              (hg_api_page_token_parse(tok, after_id, cap) != 0 || !hg_id_valid(prefix, after_id))))
    hg_api_detail(details, "pageToken", "is not a token this server issued");
  free(tok);
  if (json_array_size(details) > 0) {
    hg_api_validation_error(req, details);
    return -1;
  }
  json_decref(details);
  return 0;
}

json_t *hg_api_time(int64_t ms) {
  if (ms == 0) return json_null();
  char buf[25];
  hg_format_time(ms, buf);
  return json_string(buf);
}
