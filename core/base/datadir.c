/* datadir.c: finds the folder of hookgate's Lua library and bundled
 * plugins from the binary's own location (see datadir.h). */
#include "base/datadir.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef HG_SOURCE_DIR
#define HG_SOURCE_DIR NULL
#endif

/* Whether dir holds hookgate's Lua library. */
static int holds_library(const char *dir) {
  char probe[PATH_MAX];
  int n = snprintf(probe, sizeof(probe), "%s/lua/hookgate/runtime.lua", dir);
  return n > 0 && (size_t)n < sizeof(probe) && access(probe, R_OK) == 0;
}

static int put(char *out, size_t cap, const char *a, size_t alen, const char *b) {
  int n = snprintf(out, cap, "%.*s%s", (int)alen, a, b);
  if (n < 0 || (size_t)n >= cap) {
    if (cap > 0) out[0] = '\0';
    return -1;
  }
  return 0;
}

/* For a binary at exe (an absolute path, or NULL) and a source tree at src
 * (NULL: none). */
static int datadir_for(const char *exe, const char *src, char *out, size_t cap) {
  /* The prefix: exe without its last two components (bin/hookgate). A
   * replaced binary reads "/usr/bin/hookgate (deleted)": the name goes
   * with the suffix. */
  size_t plen = 0;
  const char *slash = exe ? strrchr(exe, '/') : NULL;
  if (slash != NULL) {
    size_t dlen = (size_t)(slash - exe);
    while (dlen > 0 && exe[dlen - 1] == '/') dlen--;
    while (dlen > 0 && exe[dlen - 1] != '/') dlen--;
    while (dlen > 0 && exe[dlen - 1] == '/') dlen--;
    plen = dlen;
  }
  char installed[PATH_MAX];
  int fits = slash != NULL && put(installed, sizeof(installed), exe, plen, "/share/hookgate") == 0;
  if (fits && holds_library(installed)) return put(out, cap, installed, strlen(installed), "");
  if (src != NULL && *src && holds_library(src)) return put(out, cap, src, strlen(src), "");
  if (fits) return put(out, cap, installed, strlen(installed), "");
  /* No binary path: the conventional prefix. */
  return put(out, cap, "/usr/local/share/hookgate", strlen("/usr/local/share/hookgate"), "");
}

int hg_datadir(char *out, size_t cap) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0 || exe[0] != '/') n = 0;
  exe[n] = '\0';
  return datadir_for(n > 0 ? exe : NULL, HG_SOURCE_DIR, out, cap);
}
