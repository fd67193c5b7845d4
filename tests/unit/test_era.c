/* Era detection: which protocol revision a connection speaks, decided by its first request. */
#include <criterion/criterion.h>

#include "broker/broker.h"

static json_t *modern_params(void) {
        return json_pack("{s:{s:s, s:{}}}", "_meta", META_PROTOCOL_VERSION, "2026-07-28", META_CLIENT_CAPS);
}

Test(era, initialize_without_modern_meta_is_legacy) {
        json_t *p = json_pack("{s:s, s:{}}", "protocolVersion", "2025-11-25", "capabilities");
        cr_assert_eq(mcp_detect_era(ERA_UNKNOWN, "initialize", p), ERA_LEGACY);
        json_decref(p);
}

Test(era, request_with_modern_meta_is_modern) {
        json_t *p = modern_params();
        cr_assert_eq(mcp_detect_era(ERA_UNKNOWN, "server/discover", p), ERA_MODERN);
        cr_assert_eq(mcp_detect_era(ERA_UNKNOWN, "tools/list", p), ERA_MODERN);
        json_decref(p);
}

Test(era, initialize_with_modern_meta_is_modern_so_it_gets_method_not_found) {
        json_t *p = modern_params();
        cr_assert_eq(mcp_detect_era(ERA_UNKNOWN, "initialize", p), ERA_MODERN);
        json_decref(p);
}

Test(era, other_first_request_without_meta_is_undecided) {
        cr_assert_eq(mcp_detect_era(ERA_UNKNOWN, "tools/list", NULL), ERA_UNKNOWN);
        cr_assert_eq(mcp_detect_era(ERA_UNKNOWN, "ping", NULL), ERA_UNKNOWN);
}

Test(era, decided_era_never_changes) {
        json_t *p = modern_params();
        cr_assert_eq(mcp_detect_era(ERA_LEGACY, "tools/list", p), ERA_LEGACY);
        cr_assert_eq(mcp_detect_era(ERA_MODERN, "initialize", NULL), ERA_MODERN);
        json_decref(p);
}
