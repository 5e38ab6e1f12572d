/* fs.c: private directories that survive a power cut (fs.h). */
#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int hg_fs_sync_parent(const char *path) {
  char parent[4096];
  const char *slash = strrchr(path, '/');
  if (slash == NULL) snprintf(parent, sizeof(parent), ".");
  else if (slash == path) snprintf(parent, sizeof(parent), "/");
  else snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
  int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int rc = fsync(fd) == 0 ? 0 : errno;
  close(fd);
  return rc;
}

int hg_fs_mkdirs(const char *dir, int sync_new, char *failed, size_t cap) {
  char p[4096];
  if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p)) return ENAMETOOLONG;
  int rc = 0;
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0') continue;
    char c = *s;
    *s = '\0';
    struct stat st;
    if (mkdir(p, 0700) == 0) {
      if (sync_new) rc = hg_fs_sync_parent(p);
    } else if (errno != EEXIST) {
      rc = errno;
    } else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
      rc = ENOTDIR;
    }
    if (rc != 0) {
      if (failed != NULL && cap > 0) snprintf(failed, cap, "%s", p);
      return rc;
    }
    *s = c;
    if (c == '\0') break;
  }
  return 0;
}
