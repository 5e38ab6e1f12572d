#include "base/common.h"
#include "pipeline/event_types.h"
#include "hgtest.h"

static void registry(void) {
  hg_event_types_t *t;
  char err[256], why[256];
  char *extra_items[] = {"invoice.paid"};
  hg_strlist_t extra = {extra_items, 1};
  CHECK_EQ_INT(hg_event_types_new(&t, &extra, err, sizeof(err)), 0);
  CHECK_EQ_INT(hg_event_types_count(t), 19); /* 15 built in, 3 operational, 1 from the config */
  CHECK_EQ_STR(hg_event_types_at(t, 15), "webhook.disabled");
  CHECK(hg_event_types_known(t, "webhook.recovered"));
  CHECK(hg_event_types_known(t, "delivery.exhausted"));
  CHECK_EQ_INT(hg_event_pattern_check(t, "webhook.*", why, sizeof(why)), 0);
  CHECK_EQ_INT(hg_event_pattern_check(t, "delivery.*", why, sizeof(why)), 0);
  CHECK(hg_event_types_known(t, "directory.sync.completed"));
  CHECK(hg_event_types_known(t, "invoice.paid"));
  CHECK(!hg_event_types_known(t, "user.craeted"));
  CHECK_EQ_INT(hg_event_pattern_check(t, "user.created", why, sizeof(why)), 0);
  CHECK_EQ_INT(hg_event_pattern_check(t, "*", why, sizeof(why)), 0);
  CHECK_EQ_INT(hg_event_pattern_check(t, "user.*", why, sizeof(why)), 0);
  CHECK_EQ_INT(hg_event_pattern_check(t, "organization.member.*", why, sizeof(why)), 0);
  CHECK_EQ_INT(hg_event_pattern_check(t, "user.craeted", why, sizeof(why)), HG_EINVAL);
  CHECK_EQ_STR(why, "unknown event type \"user.craeted\"");
  CHECK_EQ_INT(hg_event_pattern_check(t, "billing.*", why, sizeof(why)), HG_EINVAL);
  CHECK_EQ_INT(hg_event_pattern_check(t, "User.Created", why, sizeof(why)), HG_EINVAL);
  CHECK_EQ_INT(hg_event_pattern_check(t, "user*", why, sizeof(why)), HG_EINVAL);
  CHECK_EQ_INT(hg_event_pattern_check(t, "", why, sizeof(why)), HG_EINVAL);
  hg_event_types_free(t);

  char *bad_items[] = {"Invoice Paid"};
  hg_strlist_t bad = {bad_items, 1};
  CHECK_EQ_INT(hg_event_types_new(&t, &bad, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "Invoice Paid") != NULL);
}

static void matching(void) {
  CHECK(hg_event_pattern_match("*", "user.created"));
  CHECK(hg_event_pattern_match("user.*", "user.created"));
  CHECK(!hg_event_pattern_match("user.*", "users.created"));
  CHECK(!hg_event_pattern_match("user.*", "session.created"));
  CHECK(hg_event_pattern_match("organization.*", "organization.member.added"));
  CHECK(hg_event_pattern_match("user.created", "user.created"));
  CHECK(!hg_event_pattern_match("user.created", "user.created.x"));
  /* "*" is the publishers' events: operational ones are named. */
  CHECK(hg_event_type_operational("webhook.disabled"));
  CHECK(hg_event_type_operational("delivery.exhausted"));
  CHECK(!hg_event_type_operational("webhook.disabled.x"));
  CHECK(!hg_event_type_operational("user.created"));
  CHECK(!hg_event_pattern_match("*", "webhook.disabled"));
  CHECK(hg_event_pattern_match("webhook.*", "webhook.recovered"));
  CHECK(hg_event_pattern_match("delivery.exhausted", "delivery.exhausted"));
}

int main(void) {
  RUN(registry);
  RUN(matching);
  return HGT_DONE();
}
