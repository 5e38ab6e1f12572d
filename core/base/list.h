/* list.h: an intrusive, circular, doubly linked list (the shape of the
 * Linux kernel's and libuv's queue). A hg_list_t is embedded in each
 * element and in the head; an element is found from its link with
 * HG_CONTAINER. An unlinked element points at itself, so hg_list_del is
 * safe to call twice. Header-only: every operation is a few stores. */
#ifndef HG_LIST_H
#define HG_LIST_H

#include <stddef.h>

typedef struct hg_list {
  struct hg_list *prev, *next;
} hg_list_t;

#define HG_CONTAINER(p, type, field) ((type *)(void *)((char *)(p)-offsetof(type, field)))

static inline void hg_list_init(hg_list_t *h) { h->prev = h->next = h; }
static inline int hg_list_empty(const hg_list_t *h) { return h->next == h; }
/* Inserts n after prev. */
static inline void hg_list_insert(hg_list_t *prev, hg_list_t *n) {
  n->prev = prev;
  n->next = prev->next;
  prev->next->prev = n;
  prev->next = n;
}
/* Appends n at the tail of h. */
static inline void hg_list_push(hg_list_t *h, hg_list_t *n) { hg_list_insert(h->prev, n); }
/* Inserts n at the head of h. */
static inline void hg_list_unshift(hg_list_t *h, hg_list_t *n) { hg_list_insert(h, n); }
/* Unlinks n (no-op when already unlinked). */
static inline void hg_list_del(hg_list_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}
/* Iterates h's links; safe against deleting it: keep `tmp` untouched. */
#define HG_LIST_EACH_SAFE(it, tmp, h) for ((it) = (h)->next, (tmp) = (it)->next; (it) != (h); (it) = (tmp), (tmp) = (it)->next)

#endif
