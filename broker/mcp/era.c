/* Which MCP era a request belongs to (shared/reference/mcp-requirements.md a7). Pure, so it is tested
 * on its own. */
#include "config.h"

#include "broker/broker.h"
#include "util.h"

static bool has_modern_meta(const json_t *params) {
        return json_object_get(json_object_get(params, "_meta"), META_PROTOCOL_VERSION) != NULL;
}

/* A connection's era is fixed by its first request: `initialize` without the modern _meta selects
 * 2025-11-25 for the life of the connection; a request carrying the modern _meta selects 2026-07-28.
 * Anything else leaves it undecided (the caller refuses that request). */
enum era mcp_detect_era(enum era current, const char *method, const json_t *params) {
        if (current != ERA_UNKNOWN)
                return current;
        if (has_modern_meta(params))
                return ERA_MODERN;
        if (streq(method, "initialize"))
                return ERA_LEGACY;
        return ERA_UNKNOWN;
}
