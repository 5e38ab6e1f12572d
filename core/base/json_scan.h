/* json_scan.h: allocation-free scanning of JSON text.
 *
 * The ingest hot path keeps a publisher's `data` as the exact bytes it was
 * sent in, so building a tree of it (jansson) only to throw it away was
 * most of an event's CPU (see docs/performance.md). These functions check
 * and split JSON text in place; anything unusual (escaped keys) is left to
 * jansson by the callers. */
#ifndef HG_JSON_SCAN_H
#define HG_JSON_SCAN_H

#include <stddef.h>

/* 1 if text[0..len) is exactly one valid JSON value (RFC 8259: UTF-8
 * strings without lone surrogates or \u0000, no duplicate keys within an
 * object as written, nesting at most 256 deep) with optional whitespace
 * around it. */
int hg_json_valid(const char *text, size_t len);

/* Finds the raw text of member key in a JSON object's text (already
 * validated). Returns 0 with *val, *val_len; HG_ENOTFOUND; or HG_EINVAL
 * when text is not an object. Keys written with escapes are not matched. */
int hg_json_member_span(const char *text, size_t len, const char *key, const char **val, size_t *val_len);

/* Splits the raw text of a JSON array into its elements' texts (up to max). */
int hg_json_array_spans(const char *text, size_t len, const char **vals, size_t *lens, size_t max, size_t *n);

/* Walks the members of a validated object: call with *pos = 0 first; each
 * call sets key/key_len (raw, between the quotes) and the value's span and
 * returns 1, or returns 0 at the end. *escaped is set when the key has a
 * backslash (its raw text is not its value). */
int hg_json_next_member(const char *text, size_t len, size_t *pos, const char **key, size_t *key_len, int *escaped,
                        const char **val, size_t *val_len);

#endif
