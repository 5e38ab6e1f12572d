/* console.h: serves the delivery console, a single-page app of static
 * files (console/ in a checkout, <prefix>/share/hookgate/console/ when
 * installed), on the gateway's own listener under /console.
 *
 * The files are read once, at start, into memory: they are small, and a
 * request then never waits on the disk. Only files directly in the folder
 * whose names use [A-Za-z0-9._-], do not start with '.', and end in one of
 * the known extensions (html, js, css, svg, ico, json) are loaded; a request
 * names one of them exactly, so a path outside the folder can never match.
 * Every answer carries the console's Content-Security-Policy,
 * X-Content-Type-Options: nosniff and Referrer-Policy: no-referrer. */
#ifndef HG_CONSOLE_H
#define HG_CONSOLE_H

#include "net/http_server.h"

#include <stddef.h>

typedef struct hg_console hg_console_t;

/* Reads the console's files from dir. On success *out owns them (free with
 * hg_console_free) and 0 is returned; else a negative HG_E* code and a
 * sentence in err ("no index.html in /usr/share/hookgate/console"). */
int hg_console_new(hg_console_t **out, const char *dir, char *err, size_t errlen);

/* Frees the console and its files. Accepts NULL. */
void hg_console_free(hg_console_t *c);

/* The number of files loaded. */
size_t hg_console_files(const hg_console_t *c);

/* GET /console: index.html. ud is the hg_console_t (NULL: the console is
 * off, the answer is 404). Answers 304 when If-None-Match names the file's
 * ETag. */
void hg_console_index(hg_http_req_t *req, void *ud);

/* GET /console/{file}: that file, 404 when unknown, 400 for a name with a
 * path separator or "..". ud as for hg_console_index. */
void hg_console_file(hg_http_req_t *req, void *ud);

#endif
