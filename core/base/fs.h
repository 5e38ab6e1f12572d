/* fs.h: private directories that survive a power cut. */
#ifndef HG_FS_H
#define HG_FS_H

#include <stddef.h>

/* mkdir -p of dir: every directory created is private (0700: the store and
 * the intake log hold secrets and payloads). With sync_new, each one
 * created here also has its entry synced in its parent. Returns 0 or an
 * errno value (ENOTDIR when a component exists and is not a directory),
 * with the component that failed in failed (cap bytes; may be NULL). */
int hg_fs_mkdirs(const char *dir, int sync_new, char *failed, size_t cap);

/* fsyncs the directory that holds path (its entry for path). Returns 0 or
 * an errno value. */
int hg_fs_sync_parent(const char *path);

#endif
