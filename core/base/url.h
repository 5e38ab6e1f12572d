/* url.h: the rules a webhook's URL follows, wherever it comes from: the
 * API (create, update) and the Lua phases that may change a delivery's
 * URL (a plugin's or a webhook's own transform). */
#ifndef HG_URL_H
#define HG_URL_H

#include <stddef.h>

#define HG_URL_MAX 2048

/* 1 if url is an https URL (or http when allow_http) with a host, an
 * optional port, no user information, fragment, spaces or control
 * characters, of at most HG_URL_MAX characters; else 0 with the reason
 * ("must be an https URL", ...) in why. */
int hg_url_ok(const char *url, int allow_http, char *why, size_t cap);

#endif
