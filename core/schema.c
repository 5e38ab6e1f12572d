/* schema.c: the store's schema as an ordered list of migrations.
 *
 * Migration N takes the database from user_version N-1 to N. Migrations
 * are append-only: once one has shipped it is never edited; a change is a
 * new migration at the end. Times are Unix milliseconds (INTEGER). */
#include "schema.h"

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
};

const int hg_schema_version = (int)(sizeof(hg_schema_migrations) / sizeof(hg_schema_migrations[0]));
