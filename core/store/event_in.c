/* event_in.c: an event being stored's own list of the deliveries it made
 * (hg_event_in_t's delivery_seqs), for events.c and events_pg.c. */
#include "store/events.h"

#include "base/common.h"

#include <stdlib.h>
#include <string.h>

void hg_event_in_done(hg_event_in_t *ev) {
  if (ev->delivery_seqs != ev->seq_small) free(ev->delivery_seqs);
  ev->delivery_seqs = NULL;
  ev->n_seqs = 0;
}

int hg_event_in__push_seq(hg_event_in_t *ev, int64_t seq) {
  const size_t small = sizeof(ev->seq_small) / sizeof(ev->seq_small[0]);
  if (ev->delivery_seqs == NULL) ev->delivery_seqs = ev->seq_small;
  if (ev->delivery_seqs == ev->seq_small && ev->n_seqs == small) {
    int64_t *seqs = malloc(2 * small * sizeof(*seqs));
    if (seqs == NULL) return HG_ENOMEM;
    memcpy(seqs, ev->seq_small, sizeof(ev->seq_small));
    ev->delivery_seqs = seqs;
  } else if (ev->delivery_seqs != ev->seq_small && ev->n_seqs >= 2 * small && (ev->n_seqs & (ev->n_seqs - 1)) == 0) {
    /* Full at each power of two from twice the small room on. */
    int64_t *seqs = realloc(ev->delivery_seqs, ev->n_seqs * 2 * sizeof(*seqs));
    if (seqs == NULL) return HG_ENOMEM;
    ev->delivery_seqs = seqs;
  }
  ev->delivery_seqs[ev->n_seqs++] = seq;
  return 0;
}
