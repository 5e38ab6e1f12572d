/* lazy.c: the delivery table transform and sign see, and the argument
 * route sees ({event, targets}), filled on first use.
 *
 * These tables are built for every delivery and every event, and a plugin
 * that looks at nothing (or returns early) used to pay for all of it: a
 * Lua string per field, the payload copied into one, a table of eight
 * fields and its headers table (route: the event table, its metatable,
 * the targets array and the argument table), and the collector's work to
 * free them again.
 *
 * Now the table starts empty, with one of the generation's shared
 * metatables, and what it is filled from is kept in a registry table with
 * weak keys (an ephemeron: it lives as long as the table): a userdata
 * holding a copy of the fields (one allocation), or, for a delivery while
 * its phase runs, a light userdata pointing at the delivery itself (then a
 * plugin that looks pays for no copy; hg_lua__seal_delivery makes the copy
 * when the phase ends if nobody looked). The first time anything looks at
 * the table — reads or writes a field, pairs(), next/rawget/rawset/rawlen/
 * getmetatable/setmetatable of the plugin's environment (the C functions
 * below, which check their arguments as the base library's do), or
 * hg_marshal_to_json (json.encode, a result read back) — the fields are
 * written into the table and the metatable goes: from then on it is the
 * table the eager version built. Filling is all or nothing: every value is
 * made first (what can fail: allocations), then written raw into room the
 * table was created with (nothing left to fail), then the metatable goes;
 * a fill that fails leaves the table lazy, and the next look fills it. A table kept and read after
 * its phase is filled from its own copy, so it still reads right.
 *
 * The shared metatables are protected (__metatable = false) and
 * unreachable from Lua, and the copies are never pushed to Lua, so no
 * plugin can reach another delivery's or event's data through them. */
#include "lua/internal.h"

#include "base/common.h"
#include "lua/marshal.h"

#include <string.h>

/* Fixed strings of a delivery copy, then header names and values. */
enum { D_ID, D_WEBHOOK, D_EVENT, D_TYPE, D_URL, D_BODY, D_SKIP, D_N };
/* Strings of a route copy, then the targets. */
enum { E_ID, E_TYPE, E_ORG, E_DATA, E_N };

/* The generation's metatables (hg_lua_t.lazy_mt): a delivery, a route
 * argument, and a filled event whose data was not read yet. */
enum { MT_DELIVERY, MT_ROUTE, MT_DATA };

typedef struct lazy_str {
  size_t off, len;
} lazy_str_t;

/* Strings a copy is made from without a scratch userdata for their list. */
#define SCRATCH 32

/* A copy of the fields (a userdata): n_str strings, their bytes after s[]. */
typedef struct lazy {
  int attempt;
  int has_skip, has_org;
  size_t n_headers, n_str; /* n_str - E_N: a route's targets */
  lazy_str_t s[];
} lazy_t;

static const char *lazy_bytes(const lazy_t *z) { return (const char *)&z->s[z->n_str]; }

static void push_str(lua_State *L, const lazy_t *z, size_t i) {
  lua_pushlstring(L, lazy_bytes(z) + z->s[i].off, z->s[i].len);
}

/* A userdata with a copy of the n strings (NULL: empty). [-0, +1, m] */
static lazy_t *new_copy(lua_State *L, const char *const *str, const size_t *len, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += len[i];
  lazy_t *z = lua_newuserdatauv(L, sizeof(lazy_t) + n * sizeof(lazy_str_t) + total, 0);
  memset(z, 0, sizeof(*z));
  z->n_str = n;
  char *p = (char *)lazy_bytes(z);
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    z->s[i].off = off;
    z->s[i].len = len[i];
    if (len[i]) memcpy(p + off, str[i], len[i]);
    off += len[i];
  }
  return z;
}

/* The copy of the lazy table at t, or NULL. [-0, +0, -] */
static lazy_t *copy_of(lua_State *L, int t) {
  hg_lua_t *rt = hg_lua__rt(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->lazy_copies);
  lua_pushvalue(L, t);
  lua_rawget(L, -2);
  lazy_t *z = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return z;
}

/* Pushes the copy of the table at t (nil if none). [-0, +1, -] */
static void push_copy(lua_State *L, int t) {
  hg_lua_t *rt = hg_lua__rt(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->lazy_copies);
  lua_pushvalue(L, t);
  lua_rawget(L, -2);
  lua_remove(L, -2);
}

/* Drops t's copy once nothing is left to fill from it. [-0, +0, -] */
static void drop_copy(lua_State *L, int t) {
  hg_lua_t *rt = hg_lua__rt(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->lazy_copies);
  lua_pushvalue(L, t);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* 1 if the table at t has the generation's metatable `which`. [-0, +0, -] */
static int has_mt(lua_State *L, int t, int which) {
  if (!lua_getmetatable(L, t)) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, which);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same;
}

/* Filling pushes key, value, key, value, ... (all that can fail), then
 * set_fields writes them raw into t: the table was created with room for
 * all of them (lazy_table), so no write allocates. At most this many pairs. */
#define FILL_MAX 9

/* Makes room for FILL_MAX pairs and the headers table. [-0, +0, m] */
static void fill_room(lua_State *L) { luaL_checkstack(L, 2 * FILL_MAX + 4, "filling a table"); }

static void push_kv(lua_State *L, const char *k) { lua_pushstring(L, k), lua_insert(L, -2); }

/* Writes the n pairs on top of the stack into t, raw, removes the
 * metatable and the copy: then t is the eager table. [-2n, +0, -] */
static void set_fields(lua_State *L, int t, int n) {
  for (int i = 0; i < n; i++) lua_rawset(L, t);
  lua_pushnil(L);
  lua_setmetatable(L, t);
}

/* Pushes a delivery's fields as pairs, as push_delivery built them.
 * Returns how many. [-0, +n, m] */
static int push_delivery_fields(lua_State *L, const lazy_t *z) {
  static const char *const names[] = {"id", "webhookId", "eventId", "eventType", "url", "body"};
  int n = 0;
  fill_room(L);
  for (size_t i = 0; i < HG_ARRAY_LEN(names); i++, n++) {
    push_str(L, z, i);
    push_kv(L, names[i]);
  }
  lua_pushstring(L, "attempt");
  lua_pushinteger(L, z->attempt);
  n++;
  lua_pushstring(L, "headers");
  lua_createtable(L, 0, (int)z->n_headers);
  for (size_t i = 0; i < z->n_headers; i++) {
    push_str(L, z, D_N + 2 * i);
    push_str(L, z, D_N + 2 * i + 1);
    lua_rawset(L, -3);
  }
  n++;
  if (z->has_skip) {
    lua_pushstring(L, "skip");
    push_str(L, z, D_SKIP);
    n++;
  }
  return n;
}

/* The same from d itself, during its phase. [-0, +n, m] */
static int push_delivery_fields_live(lua_State *L, const hg_lua_delivery_t *d) {
  const char *const names[] = {"id", "webhookId", "eventId", "eventType", "url"};
  const char *const values[] = {d->id, d->webhook_id, d->event_id, d->event_type, d->url};
  int n = 0;
  fill_room(L);
  for (size_t i = 0; i < HG_ARRAY_LEN(names); i++, n++) {
    lua_pushstring(L, names[i]);
    lua_pushstring(L, values[i]);
  }
  lua_pushstring(L, "body");
  lua_pushlstring(L, d->body, d->body_len);
  n++;
  lua_pushstring(L, "attempt");
  lua_pushinteger(L, d->attempt);
  n++;
  lua_pushstring(L, "headers");
  lua_createtable(L, 0, (int)d->n_headers);
  for (size_t i = 0; i < d->n_headers; i++) {
    lua_pushstring(L, d->headers[i].value);
    lua_setfield(L, -2, d->headers[i].name);
  }
  n++;
  if (d->skip) {
    lua_pushstring(L, "skip");
    lua_pushstring(L, d->skip);
    n++;
  }
  return n;
}

/* Pushes a route argument's fields as pairs, as R.route_event built them
 * from the event table push_event built (id, type, organizationId; data
 * decoded from the raw text on first read, behind the data metatable) and
 * the targets array. t: the argument (the event shares its copy).
 * [-0, +n, m] */
static int push_route_fields(lua_State *L, int t, const lazy_t *z) {
  hg_lua_t *rt = hg_lua__rt(L);
  fill_room(L);
  lua_pushstring(L, "event");
  lua_createtable(L, 0, 4);
  int ev = lua_gettop(L);
  push_str(L, z, E_ID);
  lua_setfield(L, ev, "id");
  push_str(L, z, E_TYPE);
  lua_setfield(L, ev, "type");
  if (z->has_org) {
    push_str(L, z, E_ORG);
    lua_setfield(L, ev, "organizationId");
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->lazy_mt[MT_DATA]);
  lua_setmetatable(L, ev);
  /* The event's data is read from the same copy. */
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->lazy_copies);
  lua_pushvalue(L, ev);
  push_copy(L, t);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  /* The targets as hg_marshal_push makes a JSON array of strings. */
  lua_pushstring(L, "targets");
  lua_Integer n = (lua_Integer)(z->n_str - E_N);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    push_str(L, z, E_N + (size_t)i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_marshal_array_mt_key);
  lua_setmetatable(L, -2);
  return 2;
}

/* Fills the table at t if it is still lazy: afterwards its raw contents are
 * what the eager version held. A delivery whose copy could not be made
 * (hg_lua__seal_delivery) raises. [-0, +0, m] */
static void touch(lua_State *L, int t) {
  hg_lua_t *rt = hg_lua__rt(L);
  if (lua_type(L, t) != LUA_TTABLE) return;
  int delivery = has_mt(L, t, rt->lazy_mt[MT_DELIVERY]);
  if (!delivery && !has_mt(L, t, rt->lazy_mt[MT_ROUTE])) return;
  t = lua_absindex(L, t);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->lazy_copies);
  lua_pushvalue(L, t);
  int type = lua_rawget(L, -2);
  void *p = lua_touserdata(L, -1);
  lua_pop(L, 2);
  if (p == NULL) luaL_error(L, "delivery table no longer available (its copy could not be made)");
  int n;
  if (type == LUA_TLIGHTUSERDATA) n = push_delivery_fields_live(L, p);
  else if (delivery) n = push_delivery_fields(L, p);
  else n = push_route_fields(L, t, p);
  set_fields(L, t, n);
  drop_copy(L, t);
}

/* An event's data, decoded from its copy (the text was validated at
 * ingest), stored in the table, and the metatable removed. [-0, +1, m] */
static int event_data(lua_State *L, int t) {
  lazy_t *z = copy_of(L, t);
  if (z == NULL) {
    lua_pushnil(L);
    return 1;
  }
  json_t *j = json_loadb(lazy_bytes(z) + z->s[E_DATA].off, z->s[E_DATA].len, JSON_DECODE_ANY, NULL);
  if (j == NULL) return luaL_error(L, "event.data: the stored text is not JSON");
  hg_marshal_push(L, j);
  json_decref(j);
  lua_pushvalue(L, -1);
  lua_setfield(L, t, "data"); /* raw: the data metatable has no __newindex */
  lua_pushnil(L);
  lua_setmetatable(L, t);
  drop_copy(L, t);
  return 1;
}

static int is_data_key(lua_State *L, int k) {
  return lua_type(L, k) == LUA_TSTRING && strcmp(lua_tostring(L, k), "data") == 0;
}

/* The metamethods below are reached only through the VM, with a table of
 * theirs, as the metatables are unreachable from Lua; they check anyway. */

/* rawget for plugins (see the raw accessors below), and the __index of a
 * lazy table: fill it, then read. [-0, +1, m] */
static int env_rawget(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  touch(L, 1);
  lua_rawget(L, 1);
  return 1;
}

/* __index of a filled event whose data was not read yet. */
static int data_index(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!is_data_key(L, 2)) {
    lua_pushnil(L);
    return 1;
  }
  return event_data(L, 1);
}

/* __newindex of a lazy table: fill it, then write (raw, as into any
 * table: t[nil] and t[NaN] raise as they would). */
static int lazy_newindex(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 3);
  touch(L, 1);
  lua_rawset(L, 1);
  return 0;
}

/* __pairs of a lazy table: fill it, then walk it with the base library's
 * next (upvalue 1), as pairs does a table without __pairs: a plugin may
 * call that iterator with anything, and it checks its arguments. */
static int lazy_pairs(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  touch(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* The touch function marshal.c calls (at hg_marshal_touch_key). */
static int touch_fn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  touch(L, 1);
  return 0;
}

/* --- the raw accessors of a plugin's environment ----------------------------
 * next, rawget, rawset, rawlen, getmetatable and setmetatable as the base
 * library has them (the same argument checks and messages), which fill a
 * lazy table first, so that a plugin sees what it would in a table built
 * in full. In C, not Lua: an error names the plugin's line (luaL_error's
 * level 1 is the caller), and the CPU budget's hook, which never raises
 * inside runtime.lua, has nothing of ours to wait for. */

static int env_next(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  touch(L, 1);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

/* Upvalue 1: runtime.lua's set of read-only proxies of the hookgate module
 * (shared by every plugin), where __newindex cannot stop a rawset: one
 * plugin could hand the others its own hookgate.crypto.hmac_sha256 and
 * read their secrets. Proxies refuse it. */
static int env_rawset(lua_State *L) {
  lua_pushvalue(L, 1);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) {
    const char *k = luaL_tolstring(L, 2, NULL);
    return luaL_error(L, "hookgate.%s is read-only (the hookgate module is shared by every plugin)", k);
  }
  lua_pop(L, 1);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  luaL_checkany(L, 3);
  lua_settop(L, 3);
  touch(L, 1);
  lua_rawset(L, 1);
  return 1;
}

static int env_rawlen(lua_State *L) {
  int t = lua_type(L, 1);
  luaL_argexpected(L, t == LUA_TTABLE || t == LUA_TSTRING, 1, "table or string");
  touch(L, 1);
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
  return 1;
}

static int env_getmetatable(lua_State *L) {
  luaL_checkany(L, 1);
  touch(L, 1);
  if (!lua_getmetatable(L, 1)) {
    lua_pushnil(L);
    return 1;
  }
  luaL_getmetafield(L, 1, "__metatable");
  return 1;
}

/* A finalizer runs with hooks off, whenever the collector decides: in
 * another plugin's run, unbounded. Plugins' metatables may not have one.
 * A lazy table is filled in full (an event's data too): it keeps no
 * metatable of ours under the plugin's. */
static int env_setmetatable(lua_State *L) {
  int t = lua_type(L, 2);
  if (t == LUA_TTABLE) {
    lua_pushstring(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL) return luaL_error(L, "setmetatable: __gc metamethods are not allowed in plugins");
    lua_pop(L, 1);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  touch(L, 1);
  if (has_mt(L, 1, hg_lua__rt(L)->lazy_mt[MT_DATA])) {
    event_data(L, 1);
    lua_pop(L, 1);
  }
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) return luaL_error(L, "cannot change a protected metatable");
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

int hg_lua__lazy_env(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"next", env_next},
      {"rawget", env_rawget},
      {"rawset", env_rawset},
      {"rawlen", env_rawlen},
      {"getmetatable", env_getmetatable},
      {"setmetatable", env_setmetatable},
      {NULL, NULL},
  };
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_createtable(L, 0, HG_ARRAY_LEN(fns) - 1);
  lua_insert(L, 1);
  luaL_setfuncs(L, fns, 1); /* rawset's upvalue (the others ignore it) */
  return 1;
}

void hg_lua__lazy_open(lua_State *L) {
  hg_lua_t *rt = hg_lua__rt(L);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  rt->lazy_copies = luaL_ref(L, LUA_REGISTRYINDEX);
  for (int i = 0; i < 3; i++) {
    lua_createtable(L, 0, 5);
    lua_pushcfunction(L, i != MT_DATA ? env_rawget : data_index);
    lua_setfield(L, -2, "__index");
    if (i != MT_DATA) {
      lua_pushcfunction(L, lazy_newindex);
      lua_setfield(L, -2, "__newindex");
      lua_getglobal(L, "next"); /* the base library's */
      lua_pushcclosure(L, lazy_pairs, 1);
      lua_setfield(L, -2, "__pairs");
      lua_pushcfunction(L, touch_fn);
      lua_rawsetp(L, -2, &hg_marshal_touch_key);
    }
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    rt->lazy_mt[i] = luaL_ref(L, LUA_REGISTRYINDEX);
  }
}

/* An empty table with metatable mt and the copy on top of the stack as its
 * copy; leaves the table. fields: how many it gets when filled. The C API
 * cannot resize a table, and filling one grown key by key rehashes it at
 * every power of two (more than the eager version cost in all): it is
 * created with room for them. [-1, +1, m] */
static void lazy_table(lua_State *L, int mt, int fields) {
  hg_lua_t *rt = hg_lua__rt(L);
  lua_createtable(L, 0, fields);
  lua_rawgeti(L, LUA_REGISTRYINDEX, mt);
  lua_setmetatable(L, -2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->lazy_copies);
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -4);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_remove(L, -2);
}

/* Where n strings and their lengths go while a copy is made: few and
 * few_len (SCRATCH each) when they fit, else a scratch userdata pushed on
 * the stack, collected with the rest (the caller removes it from the stack
 * when n > SCRATCH). [-0, +(0|1), m] */
static void strings_room(lua_State *L, size_t n, const char **few, size_t *few_len, const char ***str, size_t **len) {
  *str = few;
  *len = few_len;
  if (n <= SCRATCH) return;
  *str = lua_newuserdatauv(L, n * (sizeof(**str) + sizeof(**len)), 0);
  *len = (size_t *)(*str + n);
}

/* Pushes a copy of d's fields. [-0, +1, m] */
static void push_delivery_copy(lua_State *L, const hg_lua_delivery_t *d) {
  size_t n = D_N + 2 * d->n_headers;
  const char *few[SCRATCH], **str;
  size_t few_len[SCRATCH], *len;
  strings_room(L, n, few, few_len, &str, &len); /* many headers: a scratch */
  str[D_ID] = d->id, str[D_WEBHOOK] = d->webhook_id, str[D_EVENT] = d->event_id, str[D_TYPE] = d->event_type;
  str[D_URL] = d->url;
  str[D_SKIP] = d->skip;
  for (size_t i = 0; i < D_N; i++)
    if (i != D_BODY) len[i] = str[i] ? strlen(str[i]) : 0;
  str[D_BODY] = d->body;
  len[D_BODY] = d->body_len;
  for (size_t i = 0; i < d->n_headers; i++) {
    str[D_N + 2 * i] = d->headers[i].name;
    len[D_N + 2 * i] = strlen(d->headers[i].name);
    str[D_N + 2 * i + 1] = d->headers[i].value;
    len[D_N + 2 * i + 1] = strlen(d->headers[i].value);
  }
  lazy_t *z = new_copy(L, str, len, n);
  z->attempt = d->attempt;
  z->has_skip = d->skip != NULL;
  z->n_headers = d->n_headers;
  if (n > SCRATCH) lua_remove(L, -2); /* the scratch */
}

void hg_lua__push_delivery(lua_State *L, const hg_lua_delivery_t *d) {
  /* While its phase runs, the table is filled from d itself (a light
   * userdata where the copy goes): a plugin that looks at it pays for no
   * copy. hg_lua__seal_delivery makes the copy if it is still lazy then. */
  lua_pushlightuserdata(L, (void *)d);
  lazy_table(L, hg_lua__rt(L)->lazy_mt[MT_DELIVERY], 8 + (d->skip != NULL));
}

/* hg_lua__seal_delivery's protected part: at 1 the table, at 2 d (a light
 * userdata); the copy becomes the table's. [-0, +0, m] */
static int seal(lua_State *L) {
  const hg_lua_delivery_t *d = lua_touserdata(L, 2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, hg_lua__rt(L)->lazy_copies);
  lua_pushvalue(L, 1);
  push_delivery_copy(L, d);
  lua_rawset(L, -3);
  return 0;
}

void hg_lua__seal_delivery(lua_State *L, int idx, const hg_lua_delivery_t *d) {
  hg_lua_t *rt = hg_lua__rt(L);
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE || !has_mt(L, idx, rt->lazy_mt[MT_DELIVERY])) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->lazy_copies);
  lua_pushvalue(L, idx);
  int live = lua_rawget(L, -2) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == (void *)d;
  lua_pop(L, 1);
  if (live) {
    /* d goes: first the pointer (a key already there: no allocation), so
     * that whatever happens next the table never reads it; a table left
     * without its copy raises when read (touch). */
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 0);
    lua_rawset(L, -3);
    /* The copy allocates: in a protected call, as this runs outside one,
     * where a memory error would be a panic. */
    lua_pushcfunction(L, seal);
    lua_pushvalue(L, idx);
    lua_pushlightuserdata(L, (void *)d);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

int hg_lua__untouched(lua_State *L, int idx) {
  hg_lua_t *rt = hg_lua__rt(L);
  return has_mt(L, idx, rt->lazy_mt[MT_DELIVERY]) || has_mt(L, idx, rt->lazy_mt[MT_ROUTE]);
}

int hg_lua__push_route(lua_State *L, const hg_lua_event_t *ev, json_t *targets) {
  size_t n = E_N + json_array_size(targets);
  const char *few[SCRATCH], **str;
  size_t few_len[SCRATCH], *len;
  strings_room(L, n, few, few_len, &str, &len); /* many targets: a scratch */
  str[E_ID] = ev->id, str[E_TYPE] = ev->type, str[E_ORG] = ev->org, str[E_DATA] = ev->data;
  len[E_ID] = strlen(ev->id), len[E_TYPE] = strlen(ev->type), len[E_ORG] = ev->org ? strlen(ev->org) : 0;
  len[E_DATA] = ev->data_len;
  for (size_t i = E_N; i < n; i++) {
    json_t *x = json_array_get(targets, i - E_N);
    if (!json_is_string(x)) {
      if (n > SCRATCH) lua_pop(L, 1);
      return HG_EINVAL;
    }
    str[i] = json_string_value(x);
    len[i] = json_string_length(x);
  }
  lazy_t *z = new_copy(L, str, len, n);
  z->has_org = ev->org != NULL;
  if (n > SCRATCH) lua_remove(L, -2); /* the scratch */
  lazy_table(L, hg_lua__rt(L)->lazy_mt[MT_ROUTE], 2);
  return 0;
}
