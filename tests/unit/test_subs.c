#include "base/common.h"
#include "hgtest.h"
#include "pipeline/subs.h"

#include <stdlib.h>

static int has(json_t *ids, const char *id) {
  size_t i;
  json_t *v;
  json_array_foreach(ids, i, v) if (strcmp(json_string_value(v), id) == 0) return 1;
  return 0;
}

static void matching(void) {
  hg_subs_t *s = hg_subs_new();
  CHECK_EQ_INT(hg_subs_put(s, "wh_exact", NULL, 1, "[\"user.created\"]"), 0);
  CHECK_EQ_INT(hg_subs_put(s, "wh_prefix", NULL, 1, "[\"user.*\",\"user.created\"]"), 0);
  CHECK_EQ_INT(hg_subs_put(s, "wh_all", NULL, 1, "[\"*\"]"), 0);
  CHECK_EQ_INT(hg_subs_put(s, "wh_orga", "orga", 1, "[\"user.*\"]"), 0);
  CHECK_EQ_INT(hg_subs_put(s, "wh_off", NULL, 0, "[\"*\"]"), 0);
  CHECK_EQ_INT(hg_subs_put(s, "wh_bad", NULL, 1, "not json"), HG_EINVAL);

  json_t *ids = hg_subs_match(s, "user.created", "");
  CHECK_EQ_INT(json_array_size(ids), 3); /* wh_prefix once, though it matches twice */
  CHECK(has(ids, "wh_exact") && has(ids, "wh_prefix") && has(ids, "wh_all"));
  CHECK(!has(ids, "wh_orga") && !has(ids, "wh_off"));
  json_decref(ids);

  ids = hg_subs_match(s, "user.created", "orga"); /* no-organization webhooks get every organization's events */
  CHECK_EQ_INT(json_array_size(ids), 4);
  CHECK(has(ids, "wh_orga"));
  json_decref(ids);

  ids = hg_subs_match(s, "user.created", "orgb");
  CHECK(!has(ids, "wh_orga"));
  json_decref(ids);

  ids = hg_subs_match(s, "session.created", "");
  CHECK_EQ_INT(json_array_size(ids), 1);
  CHECK(has(ids, "wh_all"));
  json_decref(ids);

  ids = hg_subs_match(s, "organization.member.added", "");
  CHECK_EQ_INT(json_array_size(ids), 1);
  json_decref(ids);

  /* Updates: replace, deactivate, delete. */
  CHECK_EQ_INT(hg_subs_put(s, "wh_exact", NULL, 1, "[\"session.*\"]"), 0);
  hg_subs_set_active(s, "wh_all", 0);
  hg_subs_del(s, "wh_prefix");
  ids = hg_subs_match(s, "user.created", "");
  CHECK_EQ_INT(json_array_size(ids), 0);
  json_decref(ids);
  ids = hg_subs_match(s, "session.revoked", "");
  CHECK_EQ_INT(json_array_size(ids), 1);
  CHECK(has(ids, "wh_exact"));
  json_decref(ids);
  hg_subs_del(s, "wh_nope");
  hg_subs_free(s);
}

/* The index keeps recent answers: every change must show in the next one. */
static void answers_follow_changes(void) {
  hg_subs_t *s = hg_subs_new();
  json_t *ids = hg_subs_match(s, "user.created", "");
  CHECK_EQ_INT(json_array_size(ids), 0);
  json_decref(ids);
  CHECK_EQ_INT(hg_subs_put(s, "wh_a", NULL, 1, "[\"user.created\"]"), 0);
  ids = hg_subs_match(s, "user.created", "");
  CHECK_EQ_INT(json_array_size(ids), 1);
  json_t *again = hg_subs_match(s, "user.created", "");
  CHECK(again == ids); /* the same answer, shared */
  json_decref(again);
  json_decref(ids);
  hg_subs_set_active(s, "wh_a", 0);
  ids = hg_subs_match(s, "user.created", "");
  CHECK_EQ_INT(json_array_size(ids), 0);
  json_decref(ids);
  hg_subs_set_active(s, "wh_a", 1);
  CHECK_EQ_INT(hg_subs_put(s, "wh_b", NULL, 1, "[\"user.*\"]"), 0);
  ids = hg_subs_match(s, "user.created", "");
  CHECK_EQ_INT(json_array_size(ids), 2);
  json_decref(ids);
  /* Another organization is another answer. */
  CHECK_EQ_INT(hg_subs_put(s, "wh_org", "org_1", 1, "[\"*\"]"), 0);
  ids = hg_subs_match(s, "user.created", "org_1");
  CHECK_EQ_INT(json_array_size(ids), 3);
  json_decref(ids);
  ids = hg_subs_match(s, "user.created", "");
  CHECK_EQ_INT(json_array_size(ids), 2);
  json_decref(ids);
  hg_subs_del(s, "wh_b");
  ids = hg_subs_match(s, "user.created", "");
  CHECK_EQ_INT(json_array_size(ids), 1);
  CHECK(has(ids, "wh_a"));
  json_decref(ids);
  hg_subs_free(s);
}

int main(void) {
  RUN(matching);
  RUN(answers_follow_changes);
  return HGT_DONE();
}
