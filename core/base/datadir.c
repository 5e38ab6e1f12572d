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

/* Copies s into out; -1 (and "") when it does not fit. */
static int put(char *out, size_t cap, const char *s) {
  if (cap == 0) return -1;
  if (strlen(s) >= cap) {
    out[0] = '\0';
    return -1;
  }
  strcpy(out, s);
  return 0;
}

/* For a binary at exe (an absolute path, or NULL) and a source tree at src
 * (NULL: none). */
static int datadir_for(const char *exe, const char *src, char *out, size_t cap) {
  if (exe == NULL || strrchr(exe, '/') == NULL) {
    /* No binary path: the conventional prefix. */
    return put(out, cap, "/usr/local/share/hookgate");
  }
  /* The prefix: exe without its last two components (bin/hookgate). A
   * replaced binary reads "/usr/bin/hookgate (deleted)": the suffix goes
   * with the name. */
  size_t len = (size_t)(strrchr(exe, '/') - exe);
  while (len > 0 && exe[len - 1] == '/') len--;
  while (len > 0 && exe[len - 1] != '/') len--;
  while (len > 0 && exe[len - 1] == '/') len--;
  char installed[PATH_MAX];
  int n = snprintf(installed, sizeof(installed), "%.*s/share/hookgate", (int)len, exe);
  if (n < 0 || (size_t)n >= sizeof(installed)) {
    if (cap > 0) out[0] = '\0';
    return -1;
  }
  if (holds_library(installed)) return put(out, cap, installed);
  if (src != NULL && *src && holds_library(src)) return put(out, cap, src);
  return put(out, cap, installed);
}

int hg_datadir(char *out, size_t cap) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0 || n >= (ssize_t)sizeof(exe) - 1 || exe[0] != '/') n = 0; /* none, or cut short */
  exe[n] = '\0';
  return datadir_for(n > 0 ? exe : NULL, HG_SOURCE_DIR, out, cap);
}
