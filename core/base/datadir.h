/* datadir.h: where hookgate's own files are: the Lua library (lua/) and
 * the bundled plugins (plugins/). */
#ifndef HG_DATADIR_H
#define HG_DATADIR_H

#include <stddef.h>

/* Writes to out (cap bytes) the folder holding lua/ and plugins/, the first
 * of:
 *   1. <prefix>/share/hookgate, where <prefix> is the folder above the one
 *      holding the running binary (/proc/self/exe): an installed tree,
 *      whatever the prefix (bin/hookgate beside share/hookgate/);
 *   2. the checkout the binary was built from (HG_SOURCE_DIR): build/hookgate,
 *      or a copy of it, run while its source tree is there;
 *   3. else 1's folder anyway, so that errors name where an installed binary
 *      looks (/usr/local/share/hookgate when /proc/self/exe cannot be read).
 * A candidate counts when it holds lua/hookgate/runtime.lua. Returns 0, or
 * -1 when the path does not fit in cap (out is then ""). */
int hg_datadir(char *out, size_t cap);

#endif
