/* fsync_modes: what one write + fdatasync costs on this disk when the file
 * grows (append), when its blocks were allocated with posix_fallocate
 * (unwritten extents), and when they were written once before (overwrite,
 * as the intake log's reused segments are).
 *
 *   cc -O2 -o fsync_modes bench/experiments/fsync_modes.c && ./fsync_modes [DIR [CHUNK [N]]]
 *
 * Defaults: DIR /var/tmp (must be a real disk, not tmpfs), CHUNK 16384
 * bytes, N 2000 writes per mode. Prints the mean µs per write + fdatasync. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "/var/tmp";
  size_t chunk = argc > 2 ? (size_t)atol(argv[2]) : 16384;
  int n = argc > 3 ? atoi(argv[3]) : 2000;
  static const char *const names[] = {"append (the file grows)", "fallocate'd (unwritten extents)",
                                      "overwrite (blocks written before)"};
  char path[4096];
  snprintf(path, sizeof(path), "%s/fsync_modes.%d", dir, (int)getpid());
  char *buf = malloc(chunk), *zero = calloc(1, 1 << 20);
  if (buf == NULL || zero == NULL) return 1;
  memset(buf, 'x', chunk);
  for (int mode = 0; mode < 3; mode++) {
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
      perror(path);
      return 1;
    }
    size_t total = (size_t)n * chunk;
    if (mode == 1 && posix_fallocate(fd, 0, (off_t)total) != 0) return 1;
    for (size_t off = 0; mode == 2 && off < total; off += 1 << 20)
      if (pwrite(fd, zero, 1 << 20, (off_t)off) != 1 << 20) return 1;
    if (fsync(fd) != 0) return 1;
    double t0 = now_us();
    for (int i = 0; i < n; i++)
      if (pwrite(fd, buf, chunk, (off_t)((size_t)i * chunk)) != (ssize_t)chunk || fdatasync(fd) != 0) return 1;
    printf("%-36s %7.1f us per %zu-byte write + fdatasync\n", names[mode], (now_us() - t0) / n, chunk);
    close(fd);
  }
  unlink(path);
  free(buf);
  free(zero);
  return 0;
}
