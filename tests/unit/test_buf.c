/* The base layer's buffer, array growth and list. */
#include "base/buf.h"
#include "base/common.h"
#include "base/list.h"
#include "hgtest.h"

#include <stdlib.h>

static void buf_append_consume(void) {
  hg_buf_t b = {0};
  CHECK_EQ_INT(hg_buf_append(&b, "hello ", 6), 0);
  CHECK_EQ_INT(hg_buf_append(&b, "world", 5), 0);
  CHECK_EQ_INT(hg_buf_unread(&b), 11);
  hg_buf_consume(&b, 6);
  CHECK_EQ_INT(hg_buf_unread(&b), 5);
  CHECK(memcmp(b.data + b.off, "world", 5) == 0);
  /* Consumed space is reclaimed before the buffer grows. */
  size_t cap = b.cap;
  char fill[300];
  memset(fill, 'x', sizeof(fill));
  CHECK_EQ_INT(hg_buf_append(&b, fill, cap - b.len + 3), 0);
  CHECK_EQ_INT(b.off, 0);
  CHECK(memcmp(b.data, "world", 5) == 0);
  hg_buf_consume(&b, 1000000); /* more than there is: all of it */
  CHECK_EQ_INT(hg_buf_unread(&b), 0);
  CHECK_EQ_INT(b.len, 0);
  hg_buf_free(&b);
  CHECK(b.data == NULL && b.cap == 0);
}

static void buf_printf_take(void) {
  hg_buf_t b = {0};
  for (int i = 0; i < 1000; i++) hg_buf_printf(&b, "%d,", i);
  CHECK(!b.failed);
  CHECK(b.len > 3000);
  CHECK(memcmp(b.data, "0,1,2,", 6) == 0);
  size_t n;
  char *s = hg_buf_take(&b, &n);
  CHECK(s != NULL);
  CHECK_EQ_INT(strlen(s), n);
  CHECK(strstr(s, ",999,") != NULL);
  CHECK(b.data == NULL && b.len == 0);
  free(s);
  hg_buf_t e = {0};
  s = hg_buf_take(&e, &n);
  CHECK(s != NULL && *s == '\0' && n == 0);
  free(s);
  hg_buf_t f = {0};
  f.failed = 1;
  CHECK(hg_buf_take(&f, &n) == NULL);
}

static void grow_doubles(void) {
  int *a = NULL;
  size_t cap = 0;
  CHECK_EQ_INT(hg_grow(&a, &cap, 1, sizeof(*a), 16), 0);
  CHECK_EQ_INT(cap, 16);
  CHECK_EQ_INT(hg_grow(&a, &cap, 16, sizeof(*a), 16), 0);
  CHECK_EQ_INT(cap, 16);
  CHECK_EQ_INT(hg_grow(&a, &cap, 17, sizeof(*a), 16), 0);
  CHECK_EQ_INT(cap, 32);
  for (int i = 0; i < 32; i++) a[i] = i;
  CHECK_EQ_INT(hg_grow(&a, &cap, 100, sizeof(*a), 16), 0);
  CHECK_EQ_INT(cap, 128);
  CHECK_EQ_INT(a[31], 31);
  /* An impossible size fails and leaves the array alone. */
  CHECK_EQ_INT(hg_grow(&a, &cap, SIZE_MAX / 2, sizeof(*a), 16), HG_ENOMEM);
  CHECK_EQ_INT(cap, 128);
  CHECK_EQ_INT(a[31], 31);
  free(a);
  /* Capped: doubling stops at the limit, and more than it is refused. */
  char *b = NULL;
  cap = 0;
  CHECK_EQ_INT(hg_grow_max(&b, &cap, 600, 1, 256, 1000), 0);
  CHECK_EQ_INT(cap, 1000);
  CHECK_EQ_INT(hg_grow_max(&b, &cap, 1001, 1, 256, 1000), HG_ENOMEM);
  CHECK_EQ_INT(cap, 1000);
  free(b);
}

typedef struct item {
  int v;
  hg_list_t link;
} item_t;

static void list_order(void) {
  hg_list_t h;
  hg_list_init(&h);
  CHECK(hg_list_empty(&h));
  item_t it[4] = {{1, {0}}, {2, {0}}, {3, {0}}, {0, {0}}};
  hg_list_push(&h, &it[0].link);
  hg_list_push(&h, &it[1].link);
  hg_list_push(&h, &it[2].link);
  hg_list_unshift(&h, &it[3].link);
  int seen[4], n = 0;
  hg_list_t *l, *tmp;
  HG_LIST_EACH_SAFE(l, tmp, &h) {
    item_t *x = HG_CONTAINER(l, item_t, link);
    seen[n++] = x->v;
    if (x->v == 2) hg_list_del(l);
  }
  CHECK_EQ_INT(n, 4);
  CHECK(seen[0] == 0 && seen[1] == 1 && seen[2] == 2 && seen[3] == 3);
  hg_list_del(&it[1].link); /* twice: a no-op */
  n = 0;
  HG_LIST_EACH_SAFE(l, tmp, &h) n++;
  CHECK_EQ_INT(n, 3);
}

int main(void) {
  RUN(buf_append_consume);
  RUN(buf_printf_take);
  RUN(grow_doubles);
  RUN(list_order);
  return HGT_DONE();
}
