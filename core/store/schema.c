/* schema.c: the store's schema as an ordered list of migrations.
 *
 * Migration N takes the database from user_version N-1 to N. Migrations
 * are append-only: once one has shipped it is never edited; a change is a
 * new migration at the end. Times are Unix milliseconds (INTEGER). */
#include "store/schema.h"

const char *const hg_schema_migrations[] = {
    /* 1: webhooks, their signing secrets, and API keys. */
    "CREATE TABLE webhooks ("
    "  id TEXT PRIMARY KEY," /* wh_<time-ordered>: ORDER BY id is creation order */
    "  url TEXT NOT NULL,"
    "  events TEXT NOT NULL," /* JSON array of strings */
    "  organization_id TEXT,"
    "  active INTEGER NOT NULL DEFAULT 1,"
    "  metadata TEXT NOT NULL DEFAULT '{}'," /* JSON object string -> string */
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX webhooks_by_org ON webhooks(organization_id, id);"
    "CREATE TABLE webhook_secrets ("
    "  webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
    "  secret TEXT NOT NULL," /* whsec_<base64> */
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER," /* NULL: the current secret */
    "  PRIMARY KEY (webhook_id, secret)"
    ") WITHOUT ROWID;"
    "CREATE TABLE api_keys ("
    "  id TEXT PRIMARY KEY," /* key_<time-ordered> */
    "  hash BLOB NOT NULL UNIQUE," /* SHA-256 of the key; the key itself is never stored */
    "  prefix TEXT NOT NULL," /* first characters, to tell keys apart in listings */
    "  scopes TEXT NOT NULL," /* comma-separated */
    "  organization_id TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER"
    ");",

    /* 2: events, their deliveries and delivery attempts, and the index of
     * subscriptions that fan-out uses instead of scanning every webhook. */
    "CREATE TABLE webhook_events ("
    "  pattern TEXT NOT NULL," /* "user.created", "user.*" or "*" */
    "  webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (pattern, webhook_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX webhook_events_by_webhook ON webhook_events(webhook_id);"
    "INSERT OR IGNORE INTO webhook_events (pattern, webhook_id)"
    "  SELECT j.value, w.id FROM webhooks w, json_each(w.events) j;"
    "CREATE TABLE events ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE," /* evt_<time-ordered>, or the publisher's own id */
    "  type TEXT NOT NULL,"
    "  organization_id TEXT,"
    "  payload BLOB NOT NULL," /* the exact bytes every receiver gets */
    "  idempotency_key TEXT," /* scope + key, or NULL */
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE UNIQUE INDEX events_by_idempotency_key ON events(idempotency_key) WHERE idempotency_key IS NOT NULL;"
    "CREATE TABLE deliveries ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE," /* del_<time-ordered> */
    "  webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
    "  event_seq INTEGER NOT NULL REFERENCES events(seq),"
    "  status TEXT NOT NULL," /* pending, success, failed */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  status_code INTEGER,"
    "  next_attempt_at INTEGER," /* NULL once no attempt remains */
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX deliveries_by_webhook ON deliveries(webhook_id, id);"
    "CREATE INDEX deliveries_pending ON deliveries(next_attempt_at) WHERE status = 'pending';"
    "CREATE INDEX deliveries_by_event ON deliveries(event_seq);"
    "CREATE TABLE attempts ("
    "  id TEXT PRIMARY KEY," /* att_<time-ordered> */
    "  delivery_seq INTEGER NOT NULL REFERENCES deliveries(seq) ON DELETE CASCADE,"
    "  attempt INTEGER NOT NULL,"
    "  started_at INTEGER NOT NULL,"
    "  duration_ms INTEGER NOT NULL,"
    "  status_code INTEGER NOT NULL," /* 0: no response */
    "  response_body BLOB,"
    "  error TEXT"
    ") WITHOUT ROWID;"
    "CREATE INDEX attempts_by_delivery ON attempts(delivery_seq, attempt);",

    /* 3: per-webhook Lua: {"plugins": [{name, config}], "transform": "..."}. */
    "ALTER TABLE webhooks ADD COLUMN lua TEXT;",

    /* 4: the partial index of pending deliveries cost two B-tree writes per
     * delivery (insert, then removal when it settles) and served only the
     * scan at start-up, which reads every pending row anyway. */
    "DROP INDEX deliveries_pending;",

    /* 5: an event records how many deliveries its publish created, which an
     * idempotent replay answers with; the index of deliveries by event
     * served only that count, at one B-tree write per delivery. */
    "ALTER TABLE events ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 0;"
    "UPDATE events SET deliveries = (SELECT count(*) FROM deliveries d WHERE d.event_seq = events.seq);"
    "DROP INDEX deliveries_by_event;",

    /* 6: every lookup of a delivery by id names its webhook too, which
     * deliveries_by_webhook serves; the table-wide UNIQUE index on id cost
     * one more B-tree write per delivery (~4% of ingest) for nothing. The
     * constraint lives on as uniqueness within a webhook. SQLite cannot
     * drop a column constraint, so the table is rebuilt (its rows keep
     * their seq, which attempts reference); hg_store_migrate runs this
     * with foreign keys off, so dropping the old table deletes no
     * attempts, and checks them before committing. */
    "CREATE TABLE deliveries_new ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL," /* del_<time-ordered>; unique within its webhook */
    "  webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
    "  event_seq INTEGER NOT NULL REFERENCES events(seq),"
    "  status TEXT NOT NULL," /* pending, success, failed */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  status_code INTEGER,"
    "  next_attempt_at INTEGER," /* NULL once no attempt remains */
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");"
    "INSERT INTO deliveries_new (seq, id, webhook_id, event_seq, status, attempts, status_code, next_attempt_at, "
    "  created_at, updated_at) "
    "  SELECT seq, id, webhook_id, event_seq, status, attempts, status_code, next_attempt_at, created_at, updated_at "
    "  FROM deliveries;"
    "DROP TABLE deliveries;"
    "ALTER TABLE deliveries_new RENAME TO deliveries;"
    "CREATE UNIQUE INDEX deliveries_by_webhook ON deliveries(webhook_id, id);",

    /* 7: asymmetric signatures. A webhook signs with HMAC secrets (v1) or
     * Ed25519 keys (v1a), never both; a v1a webhook's rows in
     * webhook_secrets hold its signing keys ("whsk_<base64 seed>") in
     * secret, and beside each its public key ("whpk_<base64>"), which the
     * API answers with, so that reading a webhook never loads a private
     * key. */
    ("ALTER TABLE webhooks ADD COLUMN signature_scheme TEXT NOT NULL DEFAULT 'v1';" /* v1, v1a */
     "ALTER TABLE webhook_secrets ADD COLUMN public_key TEXT;"), /* v1a: whpk_<base64>; v1: NULL */

    /* 8: the headers an attempt's request carried, as a JSON object text
     * (name -> value), values the gateway did not set itself replaced by
     * "[redacted]"; NULL when no request was made, and for attempts
     * recorded before this migration. */
    "ALTER TABLE attempts ADD COLUMN request_headers TEXT;",

    /* 9: endpoint health (docs/api.md). Why a webhook is inactive, when the
     * gateway (or a PATCH) made it so: reason a code ("gone",
     * "consecutive_failures", "retry_policy", "manual"), message its text;
     * all NULL while active, and for webhooks deactivated before this
     * migration. The webhook's own disable rule (NULL: the gateway's).
     * Its failing streak lives in a table of its own, a row only while
     * failures are counted: it changes with every failed attempt, and on
     * PostgreSQL every change to webhooks makes each node reload its
     * subscription index (schema_pg.c). */
    ("ALTER TABLE webhooks ADD COLUMN disabled_at INTEGER;"
     "ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT;"
     "ALTER TABLE webhooks ADD COLUMN disabled_message TEXT;"
     "ALTER TABLE webhooks ADD COLUMN disable_after_exhausted INTEGER;"
     "ALTER TABLE webhooks ADD COLUMN disable_after_failing_ms INTEGER;"
     "CREATE TABLE webhook_health ("
     "  webhook_id TEXT PRIMARY KEY REFERENCES webhooks(id) ON DELETE CASCADE,"
     "  consecutive_exhausted INTEGER NOT NULL DEFAULT 0," /* deliveries in a row that failed for good */
     "  failing_since INTEGER" /* the first failed attempt since the last success */
     ") WITHOUT ROWID;"),

    /* 10: deliveries by event again (migration 5 dropped it for ingest's
     * sake): deleting an event checks its deliveries' foreign key through
     * it (the retention purge, store/purge.c), and a recovery's missed
     * events look for a delivery of each (store/recover.c). Event seqs
     * only grow, so a new entry goes at the index's right edge. */
    "CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries(event_seq);",

    /* 11: flow control (docs/api.md): the webhook's rateLimit in
     * deliveries per 1000 s (the API's per second, kept to the
     * thousandth, as an integer both engines and the store copy read
     * alike) and its maxConcurrency; NULL: no limit. */
    ("ALTER TABLE webhooks ADD COLUMN rate_limit_milli INTEGER;"
     "ALTER TABLE webhooks ADD COLUMN max_concurrency INTEGER;"),

    /* 12: ordering "fifo" (store/lines.h): an ordered webhook's row in
     * webhook_lines, and each pending delivery's place in its line. The
     * partial index holds only deliveries waiting in a line: unordered
     * webhooks' deliveries (line NULL) cost it nothing. */
    ("CREATE TABLE webhook_lines ("
     "  webhook_id TEXT PRIMARY KEY REFERENCES webhooks(id) ON DELETE CASCADE,"
     "  next INTEGER NOT NULL" /* the number the last delivery to join took */
     ") WITHOUT ROWID;"
     "ALTER TABLE deliveries ADD COLUMN line INTEGER;"
     "CREATE INDEX deliveries_line ON deliveries(webhook_id, line) WHERE line IS NOT NULL AND status = 'pending';"),
};

const int hg_schema_version = (int)(sizeof(hg_schema_migrations) / sizeof(hg_schema_migrations[0]));
