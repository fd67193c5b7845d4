/* SIGHUP / bastionctl reload: load the file again; a bad file changes nothing. Otherwise the broker
 * gets the new CONFIG, added servers are spawned, removed ones stopped, changed ones restarted, and
 * unchanged ones keep running undisturbed. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "bastiond.h"
#include "conf_load.h"
#include "log.h"
#include "util.h"

/* What the running daemon has bound or created; changing it needs a restart. */
static const char *fixed_setting_changed(const struct bastion_config *a, const struct bastion_config *b) {
        if (!streq(a->socket_path, b->socket_path))
                return "socket";
        if (!streq(a->control_socket_path, b->control_socket_path))
                return "control_socket";
        if (!streq(a->state_dir, b->state_dir))
                return "state_dir";
        if (!streq(a->runtime_dir, b->runtime_dir))
                return "runtime_dir";
        /* The front's listener is bound (or passed by systemd) once. */
        if (!a->http != !b->http)
                return "the http group";
        if (a->http && (!streq(a->http->listen, b->http->listen) || a->http->plain != b->http->plain))
                return a->http->plain != b->http->plain ? "http.plain" : "http.listen";
        return NULL;
}

static json_t *reload_error(const char *msg) {
        log_error("reload failed: %s; keeping the current configuration", msg);
        return json_pack("{s:b, s:s}", "ok", false, "error", msg);
}

static char *names_or_none(json_t *a) {
        size_t i, len = 0;
        json_t *v;
        char *s;

        if (json_array_size(a) == 0)
                return strdup("none");
        json_array_foreach(a, i, v)
                len += strlen(json_string_value(v)) + 1;
        s = calloc(len + 1, 1);
        if (!s)
                return NULL;
        json_array_foreach(a, i, v) {
                if (i)
                        strcat(s, " ");
                strcat(s, json_string_value(v));
        }
        return s;
}

/* Acts on the differences between the old configuration and the one now in sup->config. */
static void apply_changes(struct supervisor *sup, const struct bastion_config *old, json_t *added, json_t *removed,
                          json_t *changed) {
        struct child *next;

        for (struct child *w = sup->workers; w; w = next) {
                const struct server_config *now = config_find_server(&sup->config, w->name);
                const struct server_config *before = config_find_server(old, w->name);

                next = w->next;
                if (!now) {
                        json_array_append_new(removed, json_string(w->name));
                        child_stop(w, SIGTERM, false, true);
                } else if (!before || server_config_process_differs(now, before) ||
                           !streq(old->libexec_dir, sup->config.libexec_dir)) {
                        json_array_append_new(changed, json_string(w->name));
                        w->n_crashes = 0;
                        worker_send_down(w, "configuration changed", false);
                        child_stop(w, SIGTERM, true, false);
                } else if (w->state == CHILD_FAILED) {
                        /* A failed server gets a fresh start with every reload. */
                        w->n_crashes = 0;
                        child_stop(w, SIGTERM, true, false);
                }
        }
        for (size_t i = 0; i < sup->config.n_servers; i++) {
                const char *name = sup->config.servers[i].name;
                struct child *w;

                if (worker_find(sup, name))
                        continue;
                json_array_append_new(added, json_string(name));
                w = worker_new(sup, name);
                if (w)
                        (void) worker_spawn(w);
        }
}

json_t *supervisor_reload(struct supervisor *sup) {
        _cleanup_free_ char *error = NULL, *a = NULL, *r = NULL, *c = NULL;
        struct bastion_config next = {}, old;
        json_t *added, *removed, *changed;
        const char *fixed;

        if (sup->stopping)
                return reload_error("the daemon is stopping");
        log_info("reloading %s", sup->config_path);
        if (config_load(sup->config_path, &next, &error) < 0)
                return reload_error(error ?: "out of memory");
        fixed = fixed_setting_changed(&sup->config, &next);
        if (fixed) {
                char msg[256];
                snprintf(msg, sizeof(msg), "%s: changing %s needs a restart of bastiond", sup->config_path, fixed);
                config_free(&next);
                return reload_error(msg);
        }
        /* The running broker keeps the uid it started with: a new worker range may not take it in, or a
         * worker could be given the broker's uid. */
        if (sup->broker.pid > 0 && sup->broker.attest_uid >= next.worker_uid_min &&
            sup->broker.attest_uid <= next.worker_uid_max) {
                char msg[256];
                snprintf(msg, sizeof(msg), "%s: worker_uids [ %u, %u ] would include uid %u, which the running broker "
                         "uses; restart bastiond to change both", sup->config_path, (unsigned) next.worker_uid_min,
                         (unsigned) next.worker_uid_max, (unsigned) sup->broker.attest_uid);
                config_free(&next);
                return reload_error(msg);
        }
        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long) now_usec());
        config_inherit_uids(&next, &sup->config);
        old = sup->config;
        sup->config = next;
        if ((old.admin_gid != next.admin_gid || old.has_admin_gid != next.has_admin_gid) &&
            chown(next.control_socket_path, 0, next.has_admin_gid ? next.admin_gid : 0) < 0)
                log_warning_errno(errno, "Cannot give the control socket to the new admin_group: %m");
        if (broker_up(sup)) {
                (void) broker_send_config(sup);
                (void) jwks_send(sup);
        }
        added = json_array(), removed = json_array(), changed = json_array();
        apply_changes(sup, &old, added, removed, changed);
        /* A new uid range moves the front to a new uid: start it again; otherwise it takes the new
         * configuration and certificate as they are. */
        if (old.http && old.http->uid != sup->config.http->uid)
                child_stop(&sup->front, SIGTERM, true, false);
        else
                front_reload(sup);
        config_free(&old);
        sup->reloads++;
        a = names_or_none(added), r = names_or_none(removed), c = names_or_none(changed);
        log_info("reloaded configuration: added %s, removed %s, changed %s", a ?: "?", r ?: "?", c ?: "?");
        (void) sd_notify(false, "READY=1");
        supervisor_check_ready(sup);
        return json_pack("{s:b, s:o, s:o, s:o}", "ok", true, "added", added, "removed", removed, "changed", changed);
}
