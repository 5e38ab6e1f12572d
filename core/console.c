/* console.c: the delivery console's static files, read at start and served
 * from memory (see console.h). */
#include "console.h"

#include "base/common.h"
#include "base/crypto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The console loads nothing larger, and no more files than this: it is a
 * handful of small text files, and anything else in the folder is not
 * ours to serve. */
#define MAX_FILE_BYTES (1u << 20)
#define MAX_FILES 64

/* Scripts, styles, images and requests come from the gateway itself; no
 * inline code, no framing, no forms posting elsewhere. */
static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                          "img-src 'self'; base-uri 'none'; form-action 'none'; "
                          "frame-ancestors 'none'";

static const struct {
  const char *ext;
  const char *type;
} TYPES[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
};

typedef struct file {
  char *name;
  const char *type;
  char *data;
  size_t len;
  char etag[24]; /* "\"" + 16 hex digits of the SHA-256 + "\"" */
} file_t;

struct hg_console {
  file_t files[MAX_FILES];
  size_t n;
};

static const char *type_of(const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < HG_ARRAY_LEN(TYPES); i++) {
    size_t e = strlen(TYPES[i].ext);
    if (n > e && strcmp(name + n - e, TYPES[i].ext) == 0) return TYPES[i].type;
  }
  return NULL;
}

/* A name the console may serve: letters, digits, '.', '_' and '-', not
 * starting with '.', without "..". */
static int safe_name(const char *name) {
  if (name[0] == '\0' || name[0] == '.' || strstr(name, "..") != NULL) return 0;
  for (const char *p = name; *p; p++) {
    char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
          ch == '-'))
      return 0;
  }
  return 1;
}

/* Reads dir/name into f. 1 when loaded, 0 when skipped (not a regular
 * file), or a negative code with err filled. Opened without blocking, so
 * that a FIFO in the folder cannot hang the start. */
static int load(file_t *f, const char *dir, const char *name, char *err, size_t errlen) {
  char path[4096];
  int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= sizeof(path)) return 0;
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  int r = 0;
  if (fd < 0) {
    snprintf(err, errlen, "open %s: %s", path, strerror(errno));
    return HG_EIO;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) goto out; /* a folder or device: skipped */
  if ((size_t)st.st_size > MAX_FILE_BYTES) {
    snprintf(err, errlen, "%s is over %u bytes", path, MAX_FILE_BYTES);
    r = HG_EINVAL;
    goto out;
  }
  f->len = (size_t)st.st_size;
  f->data = malloc(f->len ? f->len : 1);
  f->name = strdup(name);
  if (f->data == NULL || f->name == NULL) {
    snprintf(err, errlen, "out of memory");
    r = HG_ENOMEM;
    goto out;
  }
  for (size_t got = 0; got < f->len;) {
    ssize_t k = read(fd, f->data + got, f->len - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      snprintf(err, errlen, "read %s: %s", path, k < 0 ? strerror(errno) : "short read");
      r = HG_EIO;
      goto out;
    }
    got += (size_t)k;
  }
  f->type = type_of(name);
  unsigned char sum[32];
  hg_sha256(f->data, f->len, sum);
  f->etag[0] = '"';
  hg_hex_encode(sum, 8, f->etag + 1);
  f->etag[17] = '"';
  f->etag[18] = '\0';
  r = 1;
out:
  close(fd);
  if (r != 1) {
    free(f->name);
    free(f->data);
    memset(f, 0, sizeof(*f));
  }
  return r;
}

int hg_console_new(hg_console_t **out, const char *dir, char *err, size_t errlen) {
  *out = NULL;
  hg_console_t *c = calloc(1, sizeof(*c));
  DIR *d = NULL;
  int r = HG_ENOMEM;
  if (c == NULL) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  if ((d = opendir(dir)) == NULL) {
    snprintf(err, errlen, "open %s: %s", dir, strerror(errno));
    r = HG_EIO;
    goto fail;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!safe_name(e->d_name) || type_of(e->d_name) == NULL) continue;
    if (c->n == MAX_FILES) {
      snprintf(err, errlen, "%s holds more than %d console files", dir, MAX_FILES);
      r = HG_EINVAL;
      goto fail;
    }
    file_t *f = &c->files[c->n];
    r = load(f, dir, e->d_name, err, errlen);
    if (r < 0) goto fail;
    c->n += (size_t)r;
  }
  closedir(d);
  d = NULL;
  int has_index = 0;
  for (size_t i = 0; i < c->n; i++)
    has_index |= strcmp(c->files[i].name, "index.html") == 0;
  if (!has_index) {
    snprintf(err, errlen, "no index.html in %s", dir);
    r = HG_EINVAL;
    goto fail;
  }
  *out = c;
  return 0;
fail:
  if (d != NULL) closedir(d);
  hg_console_free(c);
  return r;
}

void hg_console_free(hg_console_t *c) {
  if (c == NULL) return;
  for (size_t i = 0; i < c->n; i++) {
    free(c->files[i].name);
    free(c->files[i].data);
  }
  free(c);
}

size_t hg_console_files(const hg_console_t *c) { return c ? c->n : 0; }

/* The headers every console answer carries, errors included. */
static void add_policy(hg_http_req_t *req) {
  hg_http_req_add_header(req, "Content-Security-Policy", CSP);
  hg_http_req_add_header(req, "X-Content-Type-Options", "nosniff");
  hg_http_req_add_header(req, "Referrer-Policy", "no-referrer");
  hg_http_req_add_header(req, "X-Frame-Options", "DENY");
  hg_http_req_add_header(req, "Cross-Origin-Opener-Policy", "same-origin");
}

/* Whether an If-None-Match value names etag (a list, or "*"). */
static int etag_matches(const char *inm, const char *etag) {
  if (inm == NULL) return 0;
  /* A weak "W/" prefix compares equal for GET (RFC 9110, weak comparison). */
  return strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL;
}

static void serve(hg_http_req_t *req, const hg_console_t *c, const char *name) {
  add_policy(req);
  const file_t *f = NULL;
  for (size_t i = 0; c != NULL && i < c->n && f == NULL; i++)
    if (strcmp(c->files[i].name, name) == 0) f = &c->files[i];
  if (f == NULL) {
    hg_http_respond_error(req, 404, "not_found", c ? "no such console file" : "the console is turned off", NULL);
    return;
  }
  hg_http_req_add_header(req, "ETag", f->etag);
  /* Revalidate each time: a restart with new files must not leave a
   * browser on an old mix of modules; the ETag makes it a 304. */
  hg_http_req_add_header(req, "Cache-Control", "no-cache");
  if (etag_matches(hg_http_req_header(req, "If-None-Match"), f->etag)) {
    hg_http_respond(req, 304, NULL, NULL, 0);
    return;
  }
  hg_http_respond(req, 200, f->type, f->data, f->len);
}

void hg_console_index(hg_http_req_t *req, void *ud) { serve(req, ud, "index.html"); }

void hg_console_file(hg_http_req_t *req, void *ud) {
  const char *name = hg_http_req_param(req, "file");
  if (name == NULL || strchr(name, '/') || strchr(name, '\\') || strstr(name, "..")) {
    add_policy(req);
    hg_http_respond_error(req, 400, "bad_request", "a console file is named without a path", NULL);
    return;
  }
  serve(req, ud, name);
}
