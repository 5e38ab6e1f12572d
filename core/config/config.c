/* config.c: reads the Lua configuration file into hg_config_t.
 *
 * The file runs in a small sandbox (base functions without file access,
 * string, table, math, and env()). Top-level assignments go through a
 * proxy that records the line of each one, so errors found after the file
 * has run still point at the line that set the key. */
#include "config/config.h"

#include "base/common.h"
#include "base/datadir.h"
#include "lua/marshal.h"
#include "net/http_client.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { K_STR, K_STRLIST, K_BOOL, K_UINT, K_SECONDS, K_SECTION, K_LOGLEVEL, K_LOGFORMAT, K_NUMBER, K_SCHEDULE, K_PLUGINS, K_DURATION } kind_t;

typedef struct field {
  const char *name;
  kind_t kind;
  size_t off; /* offset into hg_config_t */
  const struct field *sub;
  double min, max; /* for numbers */
  const char *help; /* what the value is, for error messages */
} field_t;

#define OFF(m) offsetof(hg_config_t, m)

static const field_t tls_fields[] = {
    {"listen", K_STR, OFF(tls_listen), NULL, 0, 0, "address to listen on with TLS"},
    {"cert", K_STR, OFF(tls_cert), NULL, 0, 0, "PEM certificate chain file"},
    {"key", K_STR, OFF(tls_key), NULL, 0, 0, "PEM private key file"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

static const field_t log_fields[] = {
    {"level", K_LOGLEVEL, OFF(log_level), NULL, 0, 0, "debug, info, warn or error"},
    {"format", K_LOGFORMAT, OFF(log_format), NULL, 0, 0, "logfmt or json"},
    {"access", K_BOOL, OFF(access_log), NULL, 0, 0, "one line per request"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

static const field_t http_fields[] = {
    {"max_body", K_UINT, OFF(http.max_body), NULL, 1, 1 << 30, "bytes"},
    {"max_header_bytes", K_UINT, OFF(http.max_header_bytes), NULL, 1024, 1 << 20, "bytes"},
    {"max_headers", K_UINT, OFF(http.max_headers), NULL, 8, 10000, "count"},
    {"header_timeout", K_SECONDS, OFF(http.header_timeout_ms), NULL, 0.001, 3600, "seconds"},
    {"idle_timeout", K_SECONDS, OFF(http.idle_timeout_ms), NULL, 0.001, 86400, "seconds"},
    {"body_timeout", K_SECONDS, OFF(http.body_timeout_ms), NULL, 0.001, 3600, "seconds"},
    {"max_connections", K_UINT, OFF(http.max_connections), NULL, 1, 1000000, "count"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

static const field_t webhook_fields[] = {
    {"allow_http", K_BOOL, OFF(allow_http_urls), NULL, 0, 0, "allow http:// webhook URLs"},
    {"event_types", K_STRLIST, OFF(event_types), NULL, 0, 0, "extra event type names"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

/* When a webhook whose deliveries keep failing is disabled (docs/api.md,
 * "Endpoint health"): both must hold; 0 leaves a condition out, both 0
 * turn it off. */
static const field_t disable_after_fields[] = {
    {"exhausted", K_UINT, OFF(disable_after_exhausted), NULL, 0, 1000000,
     "deliveries in a row that failed every attempt (0: not a condition)"},
    {"failing_for", K_DURATION, OFF(disable_after_failing_ms), NULL, 0, 365 * 86400,
     "a duration (\"5d\", \"12h\", \"30m\", \"90s\") or a number of seconds"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

static const field_t delivery_fields[] = {
    {"paused", K_BOOL, OFF(delivery_paused), NULL, 0, 0, "store but do not send"},
    {"schedule", K_SCHEDULE, 0, NULL, 0, 30 * 86400, "list of delays in seconds, one per attempt"},
    {"jitter", K_NUMBER, OFF(jitter), NULL, 0, 0.9, "fraction"},
    {"retry_after_max", K_NUMBER, OFF(retry_after_max), NULL, 0, 7 * 86400, "seconds"},
    {"max_in_flight", K_UINT, OFF(max_in_flight), NULL, 1, 100000, "count"},
    {"recover_rate", K_NUMBER, OFF(recover_rate), NULL, 0, 1000000, "deliveries per second (0: unpaced)"},
    {"max_per_origin", K_UINT, OFF(max_per_origin), NULL, 1, 10000, "count"},
    {"connect_timeout", K_SECONDS, OFF(connect_timeout_ms), NULL, 0.001, 600, "seconds"},
    {"timeout", K_SECONDS, OFF(request_timeout_ms), NULL, 0.001, 3600, "seconds"},
    {"max_response_body", K_UINT, OFF(max_response_body), NULL, 1, 16 << 20, "bytes"},
    {"max_event_data", K_UINT, OFF(max_event_data), NULL, 2, 64 << 20, "bytes"},
    {"allow_cidrs", K_STRLIST, OFF(allow_cidrs), NULL, 0, 0, "CIDR blocks receivers may resolve to"},
    {"ca_file", K_STR, OFF(ca_file), NULL, 0, 0, "PEM CA bundle for HTTPS receivers"},
    {"disable_after", K_SECTION, 0, disable_after_fields, 0, 0, NULL},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

static const field_t lua_fields[] = {
    {"lib_path", K_STR, OFF(lua_lib_path), NULL, 0, 0, "folder holding hookgate/*.lua"},
    {"plugin_paths", K_STRLIST, OFF(lua_plugin_paths), NULL, 0, 0, "folders of plugins"},
    {"cpu_slice", K_SECONDS, OFF(lua_cpu_slice_ms), NULL, 0.001, 10, "seconds"},
    {"cpu_budget", K_SECONDS, OFF(lua_cpu_budget_ms), NULL, 0.001, 600, "seconds"},
    {"memory", K_UINT, OFF(lua_memory), NULL, 1 << 20, 16.0 * (1 << 30), "bytes"},
    {"run_memory", K_UINT, OFF(lua_run_memory), NULL, 1 << 16, 16.0 * (1 << 30), "bytes"},
    {"shared_memory", K_UINT, OFF(lua_shared_memory), NULL, 1 << 16, 16.0 * (1 << 30), "bytes"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

static const field_t sandbox_fields[] = {
    {"workers", K_UINT, OFF(sandbox_workers), NULL, 1, 256, "processes"},
    {"states", K_UINT, OFF(sandbox_states), NULL, 1, 4096, "Lua states per worker"},
    {"cpu_budget", K_SECONDS, OFF(sandbox_cpu_budget_ms), NULL, 0.001, 60, "seconds"},
    {"grace", K_SECONDS, OFF(sandbox_grace_ms), NULL, 0.001, 10, "seconds"},
    {"memory", K_UINT, OFF(sandbox_memory), NULL, 1 << 20, 4.0 * (1 << 30), "bytes"},
    {"queue", K_UINT, OFF(sandbox_queue), NULL, 1, 10000000, "count"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

static const field_t cluster_fields[] = {
    {"node_id", K_STR, OFF(node_id), NULL, 0, 0, "this node's name among those sharing a PostgreSQL store (default: the host name)"},
    {"lease", K_SECONDS, OFF(lease_ms), NULL, 1, 86400, "seconds"},
    {"poll", K_SECONDS, OFF(poll_ms), NULL, 0.05, 60, "seconds"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

/* How long rows are kept (pipeline/retention.h): "30d", "12h", "90m",
 * "45s", "2w" or a number of seconds; 0 keeps forever. */
static const field_t retention_fields[] = {
    {"events", K_DURATION, OFF(retention_events_ms), NULL, 0, 36500.0 * 86400, "events (with their deliveries)"},
    {"deliveries", K_DURATION, OFF(retention_deliveries_ms), NULL, 0, 36500.0 * 86400, "deliveries and their attempts"},
    {"interval", K_DURATION, OFF(retention_interval_ms), NULL, 1, 7.0 * 86400, "between purge passes"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

static const field_t top_fields[] = {
    {"listen", K_STRLIST, OFF(listen), NULL, 0, 0, "address or list of addresses"},
    {"tls", K_SECTION, 0, tls_fields, 0, 0, NULL},
    {"store", K_STR, OFF(store), NULL, 0, 0, "SQLite database file, or a postgresql:// URI"},
    {"intake_log", K_BOOL, OFF(intake_log), NULL, 0, 0, "answer single events once in the intake log"},
    {"admin_key", K_STR, OFF(admin_key), NULL, 0, 0, "bootstrap admin API key"},
    {"console", K_BOOL, OFF(console), NULL, 0, 0, "serve the delivery console at /console"},
    {"log", K_SECTION, 0, log_fields, 0, 0, NULL},
    {"http", K_SECTION, 0, http_fields, 0, 0, NULL},
    {"webhooks", K_SECTION, 0, webhook_fields, 0, 0, NULL},
    {"delivery", K_SECTION, 0, delivery_fields, 0, 0, NULL},
    {"lua", K_SECTION, 0, lua_fields, 0, 0, NULL},
    {"sandbox", K_SECTION, 0, sandbox_fields, 0, 0, NULL},
    {"plugins", K_PLUGINS, OFF(plugins_json), NULL, 0, 0, "table of plugin name = { config }"},
    {"cluster", K_SECTION, 0, cluster_fields, 0, 0, NULL},
    {"retention", K_SECTION, 0, retention_fields, 0, 0, NULL},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

typedef struct loader {
  hg_config_t *cfg;
  lua_State *L;
  char *err;
  size_t errlen;
  const char *file;
  int line; /* line of the top-level assignment being checked */
} loader_t;

/* Whether buf (one line of the file) assigns name: `name =` (not `==`),
 * the name not part of a longer one (nor after a '.'), or `["name"] =` /
 * `['name'] =`; only before a `--` comment. */
static int line_assigns(const char *buf, const char *name, size_t nlen) {
  const char *end = strstr(buf, "--");
  if (end == NULL) end = buf + strlen(buf);
  for (const char *p = strstr(buf, name); p != NULL && p + nlen <= end; p = strstr(p + 1, name)) {
    const char *after = p + nlen;
    char before = p == buf ? ' ' : p[-1];
    if ((before == '"' || before == '\'') && p - buf >= 2 && p[-2] == '[' && after[0] == before && after[1] == ']') {
      after += 2;
    } else if (before == '_' || before == '.' || before == '"' || before == '\'' || isalnum((unsigned char)before) ||
               *after == '_' || isalnum((unsigned char)*after)) {
      continue;
    }
    while (*after == ' ' || *after == '\t') after++;
    if (*after == '=' && after[1] != '=') return 1;
  }
  return 0;
}

/* The first (or, with last, the last) line from `from` to `to` (0: the end)
 * of file that assigns name; 0 if none does. */
static int find_line(const char *file, const char *name, int from, int to, int last) {
  size_t nlen = strlen(name);
  /* An empty name ([""] = ...) is in no line to find: searching for it
   * matched everywhere. */
  if (nlen == 0 || file == NULL) return 0;
  FILE *f = fopen(file, "r");
  if (f == NULL) return 0;
  char buf[1024];
  int lineno = 1, found = 0;
  while ((to == 0 || lineno <= to) && fgets(buf, sizeof(buf), f) != NULL) {
    if (lineno >= from && line_assigns(buf, name, nlen)) {
      found = lineno;
      if (!last) break;
    }
    size_t len = strlen(buf);
    if (len > 0 && buf[len - 1] == '\n') lineno++; /* else: the rest of a long line comes next */
  }
  fclose(f);
  return found;
}

int hg_config_text_key_line(const char *file, const char *name, int from) {
  return find_line(file, name, from > 0 ? from : 1, 0, 0);
}

/* The line that names a (nested) key. Lua reports where the whole top-level
 * assignment ended (assign_line): look back from there for the last
 * "top =" (where the assignment starts), then forward, inside the
 * assignment, for each nested name in turn; the deepest name found wins.
 * If the top-level name is not in the text (set some other way), the last
 * "leaf =" up to assign_line, as a guess, else assign_line itself. */
static int key_line(const char *file, int assign_line, const char *key) {
  if (assign_line <= 0) return assign_line;
  /* A name that is empty ([""] = ...) is in no line to find. */
  size_t klen = strlen(key);
  if (klen == 0 || key[klen - 1] == '.' || strstr(key, "..") != NULL) return assign_line;
  char copy[256];
  snprintf(copy, sizeof(copy), "%s", key);
  char *save = NULL;
  const char *top = strtok_r(copy, ".", &save);
  if (top == NULL) return assign_line;
  int start = find_line(file, top, 1, assign_line, 1);
  if (start == 0) {
    const char *leaf = strrchr(key, '.');
    int guess = leaf ? find_line(file, leaf + 1, 1, assign_line, 1) : 0;
    return guess ? guess : assign_line;
  }
  int line = start;
  for (const char *name = strtok_r(NULL, ".", &save); name != NULL; name = strtok_r(NULL, ".", &save)) {
    int l = find_line(file, name, line, assign_line, 0);
    if (l == 0) break;
    line = l;
  }
  return line;
}

/* Where the file set each top-level key (copied from the loader's lines
 * table once the file has run). */
struct hg_config_line {
  char *key;
  int line;
};

int hg_config_key_line(const hg_config_t *cfg, const char *key) {
  if (cfg == NULL || cfg->path == NULL || key == NULL) return 0;
  size_t toplen = strcspn(key, ".");
  /* A value the environment replaced is not the file's. */
  static const struct {
    const char *key, *var;
  } envs[] = {{"listen", "HOOKGATE_LISTEN"}, {"store", "HOOKGATE_STORE"}, {"admin_key", "HOOKGATE_ADMIN_KEY"}};
  for (size_t i = 0; i < HG_ARRAY_LEN(envs); i++) {
    const char *v = getenv(envs[i].var);
    if (strlen(envs[i].key) == toplen && strncmp(key, envs[i].key, toplen) == 0 && v != NULL && *v) return 0;
  }
  for (size_t i = 0; i < cfg->n_key_lines; i++) {
    const struct hg_config_line *l = &cfg->key_lines[i];
    if (strlen(l->key) == toplen && strncmp(key, l->key, toplen) == 0) return key_line(cfg->path, l->line, key);
  }
  return 0;
}

static int fail(loader_t *ld, const char *key, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (ld->line > 0)
    snprintf(ld->err, ld->errlen, "%s:%d: %s: %s", ld->file, key_line(ld->file, ld->line, key), key, msg);
  else snprintf(ld->err, ld->errlen, "%s: %s: %s", ld->file, key, msg);
  return HG_ECONFIG;
}

static void strlist_free(hg_strlist_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->items[i]);
  free(l->items);
  l->items = NULL;
  l->n = 0;
}

static int strlist_push(hg_strlist_t *l, const char *s, size_t len) {
  char **items = realloc(l->items, (l->n + 1) * sizeof(*items));
  if (items == NULL) return HG_ENOMEM;
  l->items = items;
  if ((items[l->n] = strndup(s, len)) == NULL) return HG_ENOMEM;
  l->n++;
  return 0;
}

static int set_str(char **dst, const char *s) {
  char *copy = strdup(s);
  if (copy == NULL) return HG_ENOMEM;
  free(*dst);
  *dst = copy;
  return 0;
}

/* A duration as "30d", "12h", "90m", "45s", "2w" (a number, then one
 * unit; "1.5h" too) or a plain number of seconds, into milliseconds.
 * Returns 0, or -1 when s is no such text. */
static int parse_duration(const char *s, double *ms) {
  static const struct {
    char unit;
    double ms;
  } units[] = {{'s', 1e3}, {'m', 60e3}, {'h', 3600e3}, {'d', 86400e3}, {'w', 7 * 86400e3}};
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno != 0 || !isfinite(v) || v < 0 || !isdigit((unsigned char)s[0])) return -1;
  if (*end == '\0') {
    *ms = v * 1e3;
    return 0;
  }
  for (size_t i = 0; i < HG_ARRAY_LEN(units); i++) {
    if (end[0] == units[i].unit && end[1] == '\0') {
      *ms = v * units[i].ms;
      return 0;
    }
  }
  return -1;
}

/* Converts the value on top of the stack into the field. */
static int set_field(loader_t *ld, const field_t *f, const char *key) {
  lua_State *L = ld->L;
  char *base = (char *)ld->cfg;
  int t = lua_type(L, -1);
  switch (f->kind) {
  case K_STR:
    if (t != LUA_TSTRING) return fail(ld, key, "must be a string (%s), not %s", f->help, lua_typename(L, t));
    return set_str((char **)(base + f->off), lua_tostring(L, -1));
  case K_BOOL:
    if (t != LUA_TBOOLEAN) return fail(ld, key, "must be true or false, not %s", lua_typename(L, t));
    *(int *)(base + f->off) = lua_toboolean(L, -1);
    return 0;
  case K_LOGLEVEL:
  case K_LOGFORMAT: {
    if (t != LUA_TSTRING) return fail(ld, key, "must be a string (%s)", f->help);
    const char *s = lua_tostring(L, -1);
    int r = f->kind == K_LOGLEVEL ? hg_log_parse_level(s, (hg_log_level_t *)(base + f->off))
                                  : hg_log_parse_format(s, (hg_log_format_t *)(base + f->off));
    if (r != 0) return fail(ld, key, "must be one of: %s (got \"%s\")", f->help, s);
    return 0;
  }
  case K_UINT:
  case K_SECONDS: {
    if (t != LUA_TNUMBER) return fail(ld, key, "must be a number (%s), not %s", f->help, lua_typename(L, t));
    double v = lua_tonumber(L, -1);
    if (!(v >= f->min && v <= f->max))
      return fail(ld, key, "must be between %g and %g %s (got %g)", f->min, f->max, f->help, v);
    if (f->kind == K_SECONDS) {
      *(uint64_t *)(base + f->off) = (uint64_t)llround(v * 1000.0);
    } else {
      if (v != floor(v)) return fail(ld, key, "must be a whole number (got %g)", v);
      /* K_UINT fields are size_t or unsigned: sizes tell which. */
      if (strcmp(f->name, "max_headers") == 0 || strcmp(f->name, "max_connections") == 0 ||
          strcmp(f->name, "max_in_flight") == 0 || strcmp(f->name, "max_per_origin") == 0)
        *(unsigned *)(base + f->off) = (unsigned)v;
      else
        *(size_t *)(base + f->off) = (size_t)v;
    }
    return 0;
  }
  case K_STRLIST: {
    hg_strlist_t *l = (hg_strlist_t *)(base + f->off);
    strlist_free(l);
    if (t == LUA_TSTRING) {
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      return strlist_push(l, s, len);
    }
    if (t != LUA_TTABLE) return fail(ld, key, "must be a string or a list of strings (%s)", f->help);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1); /* raw: no metamethod of the file runs outside a protected call */
    /* A list has only the keys 1..n. */
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      lua_pop(L, 1);
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
        lua_pop(L, 1);
        return fail(ld, key, "must be a list of strings, without named keys");
      }
    }
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        return fail(ld, key, "item %lld must be a string", (long long)i);
      }
      size_t len;
      const char *s = lua_tolstring(L, -1, &len);
      int r = strlist_push(l, s, len);
      lua_pop(L, 1);
      if (r != 0) return r;
    }
    return 0;
  }
  case K_NUMBER: {
    if (t != LUA_TNUMBER) return fail(ld, key, "must be a number (%s), not %s", f->help, lua_typename(L, t));
    double v = lua_tonumber(L, -1);
    if (!(v >= f->min && v <= f->max))
      return fail(ld, key, "must be between %g and %g %s (got %g)", f->min, f->max, f->help, v);
    *(double *)(base + f->off) = v;
    return 0;
  }
  case K_SCHEDULE: {
    hg_config_t *cfg = ld->cfg;
    if (t != LUA_TTABLE) return fail(ld, key, "must be a %s", f->help);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1); /* raw: no metamethod of the file runs outside a protected call */
    if (n < 1 || n > 100) return fail(ld, key, "must list 1 to 100 delays");
    double *sched = calloc((size_t)n, sizeof(*sched));
    if (sched == NULL) return HG_ENOMEM;
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      /* A number, not a numeric string: like every other number key. */
      int isnum = lua_type(L, -1) == LUA_TNUMBER;
      double v = lua_tonumber(L, -1);
      lua_pop(L, 1);
      if (!isnum || !(v >= f->min && v <= f->max)) {
        free(sched);
        return fail(ld, key, "item %lld must be a number of seconds from 0 to %g", (long long)i, f->max);
      }
      sched[i - 1] = v;
    }
    free(cfg->schedule);
    cfg->schedule = sched;
    cfg->n_schedule = (size_t)n;
    return 0;
  }
  case K_PLUGINS: {
    if (t != LUA_TTABLE) return fail(ld, key, "must be a %s", f->help);
    char why[160] = "";
    /* The runtime's converter (lua/marshal.h): tables with keys 1..n are
     * arrays; an empty table is an empty object. */
    json_t *j = hg_marshal_to_json(L, lua_gettop(L), why, sizeof(why));
    if (j == NULL) return fail(ld, key, "%s", why);
    if (!json_is_object(j) && !(json_is_array(j) && json_array_size(j) == 0)) {
      json_decref(j);
      return fail(ld, key, "must be a %s", f->help);
    }
    const char *name;
    json_t *conf;
    json_object_foreach(j, name, conf) {
      if (!json_is_object(conf) && !(json_is_array(conf) && json_array_size(conf) == 0) && !json_is_true(conf)) {
        /* name lives in j: word the error before freeing it. */
        int r = fail(ld, key, "%s: must be a table of settings (or true)", name);
        json_decref(j);
        return r;
      }
    }
    char **dst = (char **)(base + f->off);
    free(*dst);
    *dst = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return *dst ? 0 : HG_ENOMEM;
  }
  case K_DURATION: {
    double ms = 0;
    if (t == LUA_TNUMBER) ms = lua_tonumber(L, -1) * 1e3;
    else if (t != LUA_TSTRING || parse_duration(lua_tostring(L, -1), &ms) != 0)
      return fail(ld, key,
                  "must be a duration such as \"30d\", \"12h\", \"90m\" or \"45s\" (a number of seconds also "
                  "does)%s, got %s%s%s",
                  f->min == 0 ? ", or 0 to keep forever" : "", t == LUA_TSTRING ? "\"" : "",
                  t == LUA_TSTRING ? lua_tostring(L, -1) : lua_typename(L, t), t == LUA_TSTRING ? "\"" : "");
    if (!(ms >= f->min * 1e3 && ms <= f->max * 1e3) || (ms > 0 && ms < 1000))
      return fail(ld, key, "must be %sbetween 1 second and %g days (got %g s), at most %gd", f->min == 0 ? "0 or " : "",
                  f->max / 86400, ms / 1e3, f->max / 86400);
    *(uint64_t *)(base + f->off) = (uint64_t)llround(ms);
    return 0;
  }
  case K_SECTION:
    break;
  }
  return HG_EINVAL;
}

static const field_t *find_field(const field_t *fields, const char *name) {
  for (const field_t *f = fields; f->name; f++)
    if (strcmp(f->name, name) == 0) return f;
  return NULL;
}

static void append_names(char *buf, size_t cap, const field_t *fields) {
  size_t len = 0;
  buf[0] = '\0';
  for (const field_t *f = fields; f->name && len < cap; f++)
    len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", f->name);
}

/* Walks the table on top of the stack against fields. prefix is the dotted
 * path of the table ("" at the top). */
static int walk(loader_t *ld, const field_t *fields, const char *prefix) {
  lua_State *L = ld->L;
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    char key[128];
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      snprintf(key, sizeof(key), "%s%s", prefix, "[?]");
      return fail(ld, key, "keys here must be names");
    }
    const char *name = lua_tostring(L, -2);
    snprintf(key, sizeof(key), "%s%s", prefix, name);
    const field_t *f = find_field(fields, name);
    int r;
    if (f == NULL) {
      char known[256];
      append_names(known, sizeof(known), fields);
      r = fail(ld, key, "unknown key (known here: %s)", known);
    } else if (f->kind == K_SECTION) {
      if (lua_type(L, -1) != LUA_TTABLE) {
        r = fail(ld, key, "must be a table");
      } else {
        char sub[sizeof(key) + 2];
        snprintf(sub, sizeof(sub), "%s.", key);
        r = walk(ld, f->sub, sub);
      }
    } else {
      r = set_field(ld, f, key);
    }
    if (r != 0) {
      lua_pop(L, 2);
      return r;
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* __newindex of the file's environment: stores the value and the line. */
static int env_newindex(lua_State *L) {
  lua_Debug ar;
  int line = 0;
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar)) line = ar.currentline;
  lua_pushvalue(L, 2);
  lua_pushinteger(L, line);
  lua_rawset(L, lua_upvalueindex(2)); /* lines[key] = line */
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, lua_upvalueindex(1)); /* values[key] = value */
  return 0;
}

/* env(name [, default]): reads an environment variable from the config. */
static int env_get(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *v = getenv(name);
  if (v != NULL) lua_pushstring(L, v);
  else if (lua_gettop(L) >= 2) lua_pushvalue(L, 2);
  else lua_pushnil(L);
  return 1;
}

static int env_override(hg_config_t *cfg, char *err, size_t errlen) {
  const char *v;
  int r = 0;
  if ((v = getenv("HOOKGATE_LISTEN")) != NULL && *v) {
    strlist_free(&cfg->listen);
    for (const char *p = v; *p && r == 0;) {
      const char *comma = strchr(p, ',');
      size_t len = comma ? (size_t)(comma - p) : strlen(p);
      if (len > 0) r = strlist_push(&cfg->listen, p, len);
      p += len + (comma ? 1 : 0);
    }
  }
  if (r == 0 && (v = getenv("HOOKGATE_STORE")) != NULL && *v) r = set_str(&cfg->store, v);
  if (r == 0 && (v = getenv("HOOKGATE_ADMIN_KEY")) != NULL && *v) r = set_str(&cfg->admin_key, v);
  if (r == 0 && (v = getenv("HOOKGATE_LOG_LEVEL")) != NULL && *v && hg_log_parse_level(v, &cfg->log_level) != 0) {
    snprintf(err, errlen, "HOOKGATE_LOG_LEVEL: must be one of debug, info, warn, error (got \"%s\")", v);
    return HG_ECONFIG;
  }
  if (r == 0 && (v = getenv("HOOKGATE_LOG_FORMAT")) != NULL && *v && hg_log_parse_format(v, &cfg->log_format) != 0) {
    snprintf(err, errlen, "HOOKGATE_LOG_FORMAT: must be logfmt or json (got \"%s\")", v);
    return HG_ECONFIG;
  }
  if (r != 0) snprintf(err, errlen, "out of memory");
  return r;
}

/* "FILE:LINE: KEY" for an error about key, "FILE: KEY" when the file does
 * not set it, or the environment variable's name when that set it. */
static void where(const hg_config_t *cfg, const char *key, const char *var, char *out, size_t cap) {
  const char *file = cfg->path ? cfg->path : "(defaults)";
  const char *v = var ? getenv(var) : NULL;
  int line = hg_config_key_line(cfg, key);
  if (v != NULL && *v) snprintf(out, cap, "%s", var);
  else if (line > 0) snprintf(out, cap, "%s:%d: %s", file, line, key);
  else snprintf(out, cap, "%s: %s", file, key);
}

/* Checks that hang together across keys. */
static int cross_check(hg_config_t *cfg, char *err, size_t errlen) {
  char at[300];
  if (cfg->listen.n == 0 && cfg->tls_listen == NULL) {
    where(cfg, "listen", "HOOKGATE_LISTEN", at, sizeof(at));
    snprintf(err, errlen, "%s: at least one address is needed", at);
    return HG_ECONFIG;
  }
  if (cfg->tls_listen && (!cfg->tls_cert || !cfg->tls_key)) {
    where(cfg, "tls.listen", NULL, at, sizeof(at));
    snprintf(err, errlen, "%s: needs both cert and key (tls.cert, tls.key)", at);
    return HG_ECONFIG;
  }
  if (cfg->admin_key && strlen(cfg->admin_key) < 16) {
    where(cfg, "admin_key", "HOOKGATE_ADMIN_KEY", at, sizeof(at));
    snprintf(err, errlen, "%s: must be at least 16 characters", at);
    return HG_ECONFIG;
  }
  /* A lease must outlast the attempt it covers, or another node would send
   * the same delivery while the first is still waiting for its answer. */
  if (cfg->lease_ms < cfg->request_timeout_ms + 5000) {
    where(cfg, "cluster.lease", NULL, at, sizeof(at));
    snprintf(err, errlen, "%s: must be at least delivery.timeout + 5 s (%.3g s): an attempt must end before its lease",
             at, (double)(cfg->request_timeout_ms + 5000) / 1000.0);
    return HG_ECONFIG;
  }
  return 0;
}

/* Lua names the file in its messages by a "chunk id" cut to LUA_IDSIZE:
 * a long path reads "...tail/of/it.lua:4: ...". Put the whole path back, so
 * every error starts with FILE:LINE as the documentation promises. */
static void lua_error_msg(const char *path, const char *msg, char *err, size_t errlen) {
  size_t plen = strlen(path), best = 0;
  if (msg == NULL) {
    /* error() with a table, say: there is nothing to quote. */
    snprintf(err, errlen, "%s: error object is not a string", path);
    return;
  }
  if (strncmp(msg, "...", 3) == 0) {
    /* The longest "...TAIL:" where TAIL ends the path. */
    for (const char *colon = strchr(msg + 3, ':'); colon; colon = strchr(colon + 1, ':')) {
      size_t tl = (size_t)(colon - (msg + 3));
      if (tl > 0 && tl <= plen && memcmp(path + plen - tl, msg + 3, tl) == 0) best = tl;
    }
  }
  if (best > 0) snprintf(err, errlen, "%s%s", path, msg + 3 + best);
  else snprintf(err, errlen, "%s", msg);
}

/* string.rep for config files. The base function runs its copy loop n
 * times even when the string and separator are empty, with no allocation
 * that a limit could stop: `string.rep("", 1 << 30)` spins for seconds (a
 * fuzzer found it). Here each repetition counts at least one byte, and the
 * result is bounded: no config value needs more than CONFIG_REP_MAX. */
#define CONFIG_REP_MAX (16u << 20)
static int config_rep(lua_State *L) {
  size_t l = 0, lsep = 0;
  luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &lsep);
  if (n > 0 && (uint64_t)n > CONFIG_REP_MAX / (l + lsep + 1))
    return luaL_error(L, "string.rep: a result over %d MiB has no place in a config file", CONFIG_REP_MAX >> 20);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int read_file(hg_config_t *cfg, const char *path, char *err, size_t errlen) {
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    snprintf(err, errlen, "out of memory");
    return HG_ENOMEM;
  }
  loader_t ld = {cfg, L, err, errlen, path, 0};
  int r = 0;
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  lua_getfield(L, -1, "rep");
  lua_pushcclosure(L, config_rep, 1);
  lua_setfield(L, -2, "rep"); /* also ("x"):rep(n): strings index this table */
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  lua_settop(L, 0);
  /* The base library's file loaders have no place in a config file. */
  static const char *const drop[] = {"dofile", "loadfile", "load", "collectgarbage"};
  for (size_t i = 0; i < HG_ARRAY_LEN(drop); i++) {
    lua_pushnil(L);
    lua_setglobal(L, drop[i]);
  }
  lua_pushcfunction(L, env_get);
  lua_setglobal(L, "env");

  lua_newtable(L); /* 1: values */
  lua_newtable(L); /* 2: lines */
  lua_newtable(L); /* 3: the file's environment (a proxy) */
  lua_newtable(L); /* 4: its metatable */
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, env_newindex, 2);
  lua_setfield(L, 4, "__newindex");
  /* Reads see the file's own assignments first, then the globals. */
  lua_newtable(L);
  lua_pushglobaltable(L);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, 1);
  lua_pushvalue(L, 1);
  lua_setfield(L, 4, "__index");
  lua_setmetatable(L, 3);

  if (luaL_loadfilex(L, path, "t") != LUA_OK) {
    /* Already "FILE:LINE: message", or "cannot open FILE". */
    lua_error_msg(path, lua_tostring(L, -1), err, errlen);
    r = HG_ECONFIG;
    goto done;
  }
  lua_pushvalue(L, 3);
  lua_setupvalue(L, -2, 1); /* _ENV */
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_error_msg(path, lua_tostring(L, -1), err, errlen);
    r = HG_ECONFIG;
    goto done;
  }

  /* Keep where each top-level key was set, for errors found later. */
  lua_pushnil(L);
  while (lua_next(L, 2) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      struct hg_config_line *lines = realloc(cfg->key_lines, (cfg->n_key_lines + 1) * sizeof(*lines));
      if (lines == NULL || (lines[cfg->n_key_lines].key = strdup(lua_tostring(L, -2))) == NULL) {
        if (lines) cfg->key_lines = lines;
        lua_pop(L, 2);
        snprintf(err, errlen, "out of memory");
        r = HG_ENOMEM;
        goto done;
      }
      cfg->key_lines = lines;
      lines[cfg->n_key_lines++].line = (int)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
  }

  /* Check each top-level key against the schema, with its line. */
  lua_pushnil(L);
  while (r == 0 && lua_next(L, 1) != 0) {
    lua_pushvalue(L, -2);
    lua_rawget(L, 2);
    ld.line = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    /* walk() wants a table holding just this key: build {key = value}. */
    lua_newtable(L);
    lua_pushvalue(L, -3);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    r = walk(&ld, top_fields, "");
    lua_pop(L, 2);
  }
done:
  lua_close(L);
  return r;
}

int hg_config_load(hg_config_t *cfg, const char *path, char *err, size_t errlen) {
  memset(cfg, 0, sizeof(*cfg));
  int r = 0;
  if (strlist_push(&cfg->listen, "127.0.0.1:8080", 14) != 0 || set_str(&cfg->store, "./data/hookgate.db") != 0) {
    r = HG_ENOMEM;
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  cfg->log_level = HG_LOG_INFO;
  cfg->log_format = HG_LOG_LOGFMT;
  cfg->access_log = 1;
  cfg->intake_log = 1;
  cfg->console = 1;
  hg_http_limits_default(&cfg->http);
  /* Standard Webhooks' suggested schedule: at once, 5 s, 5 min, 30 min,
   * 2 h, 5 h, 10 h, 10 h. */
  static const double schedule[] = {0, 5, 300, 1800, 7200, 18000, 36000, 36000};
  if ((cfg->schedule = malloc(sizeof(schedule))) == NULL) {
    r = HG_ENOMEM;
    goto fail;
  }
  memcpy(cfg->schedule, schedule, sizeof(schedule));
  cfg->n_schedule = HG_ARRAY_LEN(schedule);
  cfg->jitter = 0.2;
  cfg->retry_after_max = 86400;
  cfg->max_in_flight = 1024;
  cfg->recover_rate = 1000;
  cfg->disable_after_exhausted = 5;
  cfg->disable_after_failing_ms = (uint64_t)5 * 86400 * 1000;
  cfg->max_per_origin = HG_CLIENT_MAX_PER_ORIGIN;
  cfg->connect_timeout_ms = 5000;
  cfg->request_timeout_ms = 15000;
  cfg->lease_ms = 60000;
  cfg->poll_ms = 1000;
  cfg->retention_events_ms = 30ull * 86400 * 1000;
  cfg->retention_deliveries_ms = 30ull * 86400 * 1000;
  cfg->retention_interval_ms = 10ull * 60 * 1000;
  cfg->max_response_body = 65536;
  cfg->max_event_data = 256 * 1024;
  cfg->lua_cpu_slice_ms = 50;
  cfg->lua_cpu_budget_ms = 200;
  cfg->lua_memory = 128u << 20;
  cfg->lua_run_memory = 32u << 20;
  cfg->lua_shared_memory = 64u << 20;
  cfg->sandbox_workers = 2;
  cfg->sandbox_states = 64;
  cfg->sandbox_cpu_budget_ms = 100;
  cfg->sandbox_grace_ms = 20;
  cfg->sandbox_memory = 16u << 20;
  cfg->sandbox_queue = 10000;
  /* The installed tree beside the binary, else the checkout it was built
   * in (base/datadir.h); the file's lua.lib_path and lua.plugin_paths
   * replace these. */
  char data[4096], lib[4096 + 16], plugins[4096 + 16];
  if (hg_datadir(data, sizeof(data)) != 0) {
    r = HG_ECONFIG;
    snprintf(err, errlen, "the path of hookgate's Lua library is too long (set lua.lib_path and lua.plugin_paths)");
    goto fail;
  }
  snprintf(lib, sizeof(lib), "%s/lua", data);
  snprintf(plugins, sizeof(plugins), "%s/plugins", data);
  if (set_str(&cfg->lua_lib_path, lib) != 0 || strlist_push(&cfg->lua_plugin_paths, plugins, strlen(plugins)) != 0) {
    r = HG_ENOMEM;
    goto fail;
  }
  if (path != NULL) {
    if ((cfg->path = strdup(path)) == NULL) {
      r = HG_ENOMEM;
      goto fail;
    }
    if ((r = read_file(cfg, path, err, errlen)) != 0) goto fail;
  }
  if ((r = env_override(cfg, err, errlen)) != 0) goto fail;
  if ((r = cross_check(cfg, err, errlen)) != 0) goto fail;
  return 0;
fail:
  hg_config_close(cfg);
  return r;
}

void hg_config_close(hg_config_t *cfg) {
  if (cfg == NULL) return;
  free(cfg->path);
  strlist_free(&cfg->listen);
  free(cfg->tls_listen);
  free(cfg->tls_cert);
  free(cfg->tls_key);
  free(cfg->store);
  free(cfg->node_id);
  if (cfg->admin_key) {
    /* A secret: do not leave it in freed memory. */
    memset(cfg->admin_key, 0, strlen(cfg->admin_key));
    free(cfg->admin_key);
  }
  strlist_free(&cfg->event_types);
  free(cfg->schedule);
  strlist_free(&cfg->allow_cidrs);
  free(cfg->ca_file);
  free(cfg->lua_lib_path);
  strlist_free(&cfg->lua_plugin_paths);
  free(cfg->plugins_json);
  for (size_t i = 0; i < cfg->n_key_lines; i++) free(cfg->key_lines[i].key);
  free(cfg->key_lines);
  memset(cfg, 0, sizeof(*cfg));
}
