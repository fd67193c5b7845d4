/* A small JSON Schema (2020-12 subset) validator: the broker checks tool arguments with it before a
 * worker sees them, and workers check their own inputs with it again. */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* Validates `instance` against `schema`.
 * Returns 0 when valid; -EINVAL when invalid, with `err` saying where and why
 * ("quantity: must be >= 1", "(root): unexpected property \"foo\""); -EOPNOTSUPP when the schema is
 * malformed or uses a validation keyword this validator does not implement (fail closed: nothing is
 * accepted under a schema we cannot check completely), with `err` naming the keyword.
 * The whole schema is checked before the instance, so an unsupported keyword is found even in a
 * branch this instance does not reach. */
int schema_validate(const json_t *schema, const json_t *instance, char *err, size_t errlen);

/* schema_validate() without checking the schema again: for a schema schema_check() accepted and that
 * has not changed since (a worker checks its tools' schemas once, at start). */
int schema_validate_checked(const json_t *schema, const json_t *instance, char *err, size_t errlen);

/* Only the schema check: 0 when schema_validate() can enforce every keyword of `schema`,
 * -EOPNOTSUPP (and `err`) otherwise. */
int schema_check(const json_t *schema, char *err, size_t errlen);
