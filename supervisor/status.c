/* The answers to `bastionctl status` and `bastionctl workers`: the daemon, and every process with what
 * the kernel says about its confinement (struct sandbox_attestation). */
#include "config.h"

#include <unistd.h>

#include "bastiond.h"
#include "util.h"

static json_t *cap_hex(uint64_t v) {
        char buf[17];

        snprintf(buf, sizeof(buf), "%016llx", (unsigned long long) v);
        return json_string(buf);
}

static json_t *attestation_json(const struct child *c) {
        const struct sandbox_attestation *a = &c->att;

        if (c->pid <= 0)
                return json_null();
        return json_pack("{s:b, s:s, s:i, s:b, s:{s:o, s:o, s:o, s:o, s:o}, s:s, s:i}",
                         "ok", c->attested, "reason", a->reason, "seccomp", a->seccomp_mode, "no_new_privs", a->no_new_privs,
                         "capabilities", "inh", cap_hex(a->cap_inh), "prm", cap_hex(a->cap_prm), "eff", cap_hex(a->cap_eff),
                         "bnd", cap_hex(a->cap_bnd), "amb", cap_hex(a->cap_amb),
                         "namespaces", a->own_namespaces ? "own" : "shared", "landlock_abi", a->landlock_abi);
}

static json_t *child_json(const struct supervisor *sup, const struct child *c) {
        const struct server_config *sc = c->kind == CHILD_WORKER ? config_find_server(&sup->config, c->name) : NULL;
        json_t *j;

        /* The broker: the uid it was spawned with (broker_uid then; a reload does not move it). */
        uid_t uid = sc ? sc->uid : c->kind == CHILD_FRONT && sup->config.http ? sup->config.http->uid :
                    c->kind == CHILD_BROKER ? (c->pid > 0 ? c->attest_uid : sup->config.broker_uid) : 0;
        const char *kind = c->kind == CHILD_BROKER ? "broker" : c->kind == CHILD_FRONT ? "front" : "worker";

        j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:I, s:I, s:o}", "name", c->name,
                      "kind", kind, "domain", sc ? sc->domain : "",
                      "pid", (int) c->pid, "state", child_state_to_string(c->state), "restarts", (json_int_t) c->restarts,
                      "uid", (json_int_t) uid, "attestation", attestation_json(c));
        if (j && c->kind != CHILD_WORKER)
                json_object_del(j, "domain");
        if (j && c->kind == CHILD_WORKER)
                json_object_set_new(j, "generation", json_integer((json_int_t) c->generation));
        if (j && c->fail_reason[0])
                json_object_set_new(j, "reason", json_string(c->fail_reason));
        return j;
}

json_t *supervisor_workers_json(struct supervisor *sup) {
        json_t *list = json_array();

        json_array_append_new(list, child_json(sup, &sup->broker));
        if (front_configured(sup))
                json_array_append_new(list, child_json(sup, &sup->front));
        for (struct child *w = sup->workers; w; w = w->next)
                json_array_append_new(list, child_json(sup, w));
        return json_pack("{s:b, s:o}", "ok", true, "workers", list);
}

json_t *supervisor_status_json(struct supervisor *sup) {
        unsigned counts[_CHILD_STATE_MAX] = {}, total = 0;
        json_t *workers = json_object(), *j;

        for (struct child *w = sup->workers; w; w = w->next, total++)
                counts[w->state]++;
        for (int s = 0; s < _CHILD_STATE_MAX; s++)
                json_object_set_new(workers, child_state_to_string(s), json_integer(counts[s]));
        json_object_set_new(workers, "total", json_integer(total));
        j = json_pack("{s:b, s:s, s:i, s:s, s:I, s:I, s:s, s:{s:s, s:i, s:b, s:I}, s:o}",
                         "ok", true, "version", PACKAGE_VERSION, "pid", (int) getpid(), "config", sup->config_path,
                         "uptime_sec", (json_int_t) ((now_usec() - sup->started_usec) / 1000000),
                         "reloads", (json_int_t) sup->reloads, "state", sup->stopping ? "stopping" :
                         sup->ready_notified ? "running" : "starting",
                         "broker", "state", child_state_to_string(sup->broker.state), "pid", (int) sup->broker.pid,
                         "ready", sup->broker_ready, "restarts", (json_int_t) sup->broker.restarts,
                         "workers", workers);
        if (j && front_configured(sup))
                json_object_set_new(j, "front", json_pack("{s:s, s:i, s:I, s:s, s:s}",
                                    "state", child_state_to_string(sup->front.state), "pid", (int) sup->front.pid,
                                    "restarts", (json_int_t) sup->front.restarts, "listen", sup->config.http->listen,
                                    "public_url", sup->config.http->public_url));
        return j;
}
