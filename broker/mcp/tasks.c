/* Tasks (io.modelcontextprotocol/tasks, SEP-2663) for 2026-07-28 clients, kept by the broker: the
 * worker of a task-supporting tool runs one synchronous call at a time, and the broker turns that into
 * a task the client polls. A task's worker call belongs to a client of the task's own (runner), so it
 * outlives the HTTP request that created it; its answers come back here (tasks_runner_send).
 *
 * Life of a task: tasks_call() reserves a slot and starts the worker call, waiting TASK_GRACE_MS for its
 * first answer. An InputRequiredResult then goes back synchronously (MRTR before the task), and so does
 * any answer of an optional-task tool (the immediate-result shortcut); otherwise the task is announced
 * (CreateTaskResult) and the answers update it: an InputRequiredResult parks it in input_required until
 * tasks/update has answered every request, and the call is then made again with the answers and the
 * worker's requestState, exactly like an MRTR retry; a result completes it, a JSON-RPC error fails it. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "broker/audit/audit.h"
#include "broker/mcp/tasks.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"

enum task_status { TASK_WORKING, TASK_INPUT_REQUIRED, TASK_COMPLETED, TASK_FAILED, TASK_CANCELLED };

static const char *const status_names[] = {
        [TASK_WORKING] = "working", [TASK_INPUT_REQUIRED] = "input_required", [TASK_COMPLETED] = "completed",
        [TASK_FAILED] = "failed", [TASK_CANCELLED] = "cancelled",
};

struct task {
        struct task *next;
        struct broker *b;
        char id[TASK_ID_LEN + 1];
        struct client *runner;          /* owns the worker call; runner->task == this */
        char tool[128];
        bool required;                  /* taskSupport "required": never answered synchronously */
        bool announced;                 /* the client has its CreateTaskResult (knows the id) */
        bool running;                   /* a worker call is outstanding, under id `round` */
        enum task_status status;
        int64_t round;
        struct client *waiter;          /* the request that created it, until announced */
        json_t *waiter_id;
        sd_event_source *grace;
        json_t *arguments, *meta;       /* the call, to make it again after tasks/update */
        json_t *input_requests;         /* outstanding: key -> request (input_required) */
        json_t *answers;                /* answers of this round: key -> response */
        json_t *asked;                  /* every key ever asked: key -> true (never reused) */
        json_t *request_state;          /* the worker's, never shown to the client */
        json_t *result, *error;         /* completed / failed */
        const char *status_message;
        uint64_t created_ms, updated_ms;        /* CLOCK_REALTIME */
        uint64_t expires_us;                    /* CLOCK_MONOTONIC */
};

static uint64_t clock_ms(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static json_t *iso8601(uint64_t ms) {
        time_t t = (time_t) (ms / 1000);
        struct tm tm;
        char buf[64];

        gmtime_r(&t, &tm);
        snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned) (ms % 1000));
        return json_string(buf);
}

bool tasks_negotiated(const json_t *meta) {
        const json_t *ext = json_object_get(json_object_get(json_object_get(meta, META_CLIENT_CAPS), "extensions"),
                                            TASKS_EXTENSION);

        return json_is_object(ext);
}

const char *tasks_tool_support(const json_t *tool) {
        const char *s = json_string_value(json_object_get(json_object_get(tool, "execution"), "taskSupport"));

        return streq(s, "optional") || streq(s, "required") ? s : NULL;
}

static bool terminal(const struct task *t) {
        return t->status == TASK_COMPLETED || t->status == TASK_FAILED || t->status == TASK_CANCELLED;
}

static void audit_task(struct task *t, int ev, const char *detail) {
        if (t->runner)
                record_task(t->b, ev, &t->runner->principal, t->runner->server, t->tool, t->id, detail);
}

/* ---- the table ---- */

static void task_free(struct task *t) {
        struct broker *b = t->b;
        struct client *runner = TAKE_PTR(t->runner);

        for (struct task **p = &b->tasks; *p; p = &(*p)->next)
                if (*p == t) {
                        *p = t->next;
                        b->n_tasks--;
                        break;
                }
        if (t->waiter)
                t->waiter->inflight--;
        t->grace = sd_event_source_disable_unref(t->grace);
        /* Freeing the runner cancels its call at the worker (upstream_client_gone). */
        if (runner) {
                runner->task = NULL;
                client_free(runner);
        }
        json_decref(t->waiter_id);
        json_decref(t->arguments);
        json_decref(t->meta);
        json_decref(t->input_requests);
        json_decref(t->answers);
        json_decref(t->asked);
        json_decref(t->request_state);
        json_decref(t->result);
        json_decref(t->error);
        free(t);
}

/* The same caller on the same server: principal (source and sub) and tenant. */
static bool task_owned_by(const struct task *t, const struct client *c) {
        const struct bastion_config *cfg = &c->b->config;
        const char *a, *b;

        if (!t->runner || !principal_same(&t->runner->principal, &c->principal) || !streq(t->runner->server, c->server))
                return false;
        a = principal_tenant(cfg, &t->runner->principal);
        b = principal_tenant(cfg, &c->principal);
        return (!a && !b) || streq(a, b);
}

/* Forgets the tasks whose time is up; one still running is cancelled at its worker. */
static void tasks_expire(struct broker *b) {
        uint64_t now = clock_ms(CLOCK_MONOTONIC) * 1000;

        for (struct task *t = b->tasks, *n; t; t = n) {
                n = t->next;
                if (t->announced && now >= t->expires_us) {
                        log_info("task %.8s… of %s expired", t->id, t->runner ? t->runner->principal.sub : "?");
                        task_free(t);
                }
        }
}

/* Finished tasks are forgotten oldest first; false when every one that counts is unfinished. */
static bool make_room(struct broker *b, const struct client *c, bool per_principal, unsigned limit) {
        struct task *oldest = NULL;
        unsigned n = 0;

        for (struct task *t = b->tasks; t; t = t->next) {
                if (per_principal && !(t->runner && principal_same(&t->runner->principal, &c->principal)))
                        continue;
                n++;
                if (terminal(t) && (!oldest || t->created_ms < oldest->created_ms))
                        oldest = t;
        }
        if (n < limit)
                return true;
        if (!oldest)
                return false;
        task_free(oldest);
        return true;
}

static struct task *task_find(struct broker *b, const struct client *c, const char *id) {
        if (!id || strlen(id) != TASK_ID_LEN)
                return NULL;
        /* A task past its ttlMs is gone for every method, not only once the next task is created. */
        tasks_expire(b);
        for (struct task *t = b->tasks; t; t = t->next)
                /* Constant time on the id; someone else's task is reported exactly like an unknown one. */
                if (t->announced && sodium_memcmp(t->id, id, TASK_ID_LEN) == 0)
                        return task_owned_by(t, c) ? t : NULL;
        return NULL;
}

/* ---- the wire shapes ---- */

/* Task (and, with details, DetailedTask): never requestState, never the worker's keys of _meta. */
static json_t *task_json(const struct task *t, bool details) {
        json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:i, s:i}", "taskId", t->id, "status", status_names[t->status],
                              "createdAt", iso8601(t->created_ms), "lastUpdatedAt", iso8601(t->updated_ms),
                              "ttlMs", TASK_TTL_MS, "pollIntervalMs", TASK_POLL_INTERVAL_MS);

        if (!o)
                return NULL;
        if (t->status_message)
                json_object_set_new(o, "statusMessage", json_string(t->status_message));
        if (!details)
                return o;
        if (t->status == TASK_INPUT_REQUIRED)
                json_object_set(o, "inputRequests", t->input_requests);
        else if (t->status == TASK_COMPLETED)
                json_object_set(o, "result", t->result);
        else if (t->status == TASK_FAILED)
                json_object_set(o, "error", t->error);
        return o;
}

static void waiter_answer(struct task *t, json_t *msg) {
        struct client *w = TAKE_PTR(t->waiter);

        t->grace = sd_event_source_disable_unref(t->grace);
        if (!w) {
                json_decref(msg);
                return;
        }
        w->inflight--;
        json_decref(t->waiter_id);
        t->waiter_id = NULL;
        client_send(w, msg);
}

/* The CreateTaskResult: from now on the client knows the id. */
static void announce(struct task *t) {
        json_t *r = task_json(t, false);
        struct client *w = t->waiter;

        t->announced = true;
        t->expires_us = clock_ms(CLOCK_MONOTONIC) * 1000 + (uint64_t) TASK_TTL_MS * 1000;
        audit_task(t, AUDIT_TASK_CREATED, status_names[t->status]);
        log_info("task %.8s… of %s: %s/%s", t->id, t->runner->principal.sub, t->runner->server, t->tool);
        json_object_set_new(r, "resultType", json_string("task"));
        waiter_answer(t, jsonrpc_result(t->waiter_id, w ? mcp_finish_result(w, ERA_MODERN, r) : r));
}

static int on_grace(sd_event_source *s, uint64_t usec, void *userdata) {
        struct task *t = userdata;

        t->grace = sd_event_source_disable_unref(t->grace);
        announce(t);
        return 0;
}

static void set_status(struct task *t, enum task_status status, const char *message) {
        t->status = status;
        t->status_message = message;
        t->updated_ms = clock_ms(CLOCK_REALTIME);
}

static void task_fail(struct task *t, int code, const char *message) {
        json_decref(t->error);
        t->error = json_pack("{s:i, s:s}", "code", code, "message", message);
        set_status(t, TASK_FAILED, "The request failed with a JSON-RPC error");
}

/* ---- the worker call ---- */

static void run(struct task *t, const json_t *extra) {
        struct upstream *u = upstream_get(t->b, t->runner->server);
        _cleanup_json_ json_t *id = NULL;

        if (!u || !u->tools)
                return task_fail(t, BASTION_ERROR_SERVER_UNAVAILABLE, "The server is unavailable");
        t->round++;
        t->running = true;
        id = json_integer(t->round);
        /* May answer at once (tasks_runner_send) when the worker is failed or the log cannot be written. */
        upstream_call_ex(u, t->runner, id, ERA_MODERN, t->tool, t->arguments, t->meta, NULL, extra);
}

/* An InputRequiredResult of an announced task: its requests wait for tasks/update. */
static void park(struct task *t, const json_t *result) {
        json_t *requests = json_object_get(result, "inputRequests"), *v;
        const char *k;

        if (json_object_size(requests) == 0)
                return task_fail(t, JSONRPC_INTERNAL_ERROR, "The server asked for input without a request");
        json_object_foreach(requests, k, v)
                if (json_object_get(t->asked, k) || !json_is_object(v))
                        return task_fail(t, JSONRPC_INTERNAL_ERROR, "The server reused an input request key");
        json_object_foreach(requests, k, v)
                json_object_set_new(t->asked, k, json_true());
        json_decref(t->input_requests);
        t->input_requests = json_deep_copy(requests);
        json_object_clear(t->answers);
        json_decref(t->request_state);
        t->request_state = json_incref(json_object_get(result, "requestState"));
        set_status(t, TASK_INPUT_REQUIRED, "Waiting for the client's input");
}

void tasks_runner_send(struct client *c, json_t *msg) {
        _cleanup_json_ json_t *m = msg;
        struct task *t = c->task;
        json_t *result = json_object_get(m, "result"), *error = json_object_get(m, "error");
        bool input;

        /* Progress and log messages of a task's call have nobody to go to. */
        if (!t || (!result && !error) || !json_is_integer(json_object_get(m, "id")) ||
            json_integer_value(json_object_get(m, "id")) != t->round || !t->running)
                return;
        t->running = false;
        input = result && streq(json_string_value(json_object_get(result, "resultType")), "input_required");
        if (!t->announced && (input || !t->required)) {
                /* Synchronous after all: MRTR before the task, or the immediate result. Never a task. */
                json_object_set(m, "id", t->waiter_id);
                waiter_answer(t, json_incref(m));
                return task_free(t);
        }
        if (t->status == TASK_CANCELLED)
                return;
        if (error) {
                json_decref(t->error);
                t->error = json_incref(error);
                set_status(t, TASK_FAILED, "The request failed with a JSON-RPC error");
        } else if (input)
                park(t, result);
        else {
                json_decref(t->result);
                t->result = json_incref(result);
                set_status(t, TASK_COMPLETED, NULL);
        }
        if (!t->announced)
                announce(t);
}

/* A refused creation: every unfinished task of the caller (or of the broker) is still wanted. */
static void refuse_too_many(struct client *c, json_t *id, const char *tool) {
        bool mine = c->b->n_tasks < TASKS_MAX;
        unsigned max = mine ? TASKS_MAX_PER_PRINCIPAL : TASKS_MAX;
        char msg[256];

        snprintf(msg, sizeof(msg), "Too many tasks: %s holds %u unfinished tasks, the limit; cancel one or wait for "
                 "one to finish", mine ? "this caller" : "the server", max);
        log_notice("task for %s refused: too many tasks (%s)", c->principal.sub, mine ? "caller" : "broker");
        record_denial(c->b, c, tool, msg);
        client_send(c, jsonrpc_error(id, BASTION_ERROR_OVERLOADED, msg, json_pack("{s:s, s:i}", "limit",
                                     mine ? "tasks_per_principal" : "tasks", "max", max)));
}

/* A task in the table with its runner among the broker's clients, waited for by c's request id. */
static struct task *task_new(struct client *c, json_t *id, const char *tool, bool required, json_t *arguments,
                             json_t *meta) {
        struct broker *b = c->b;
        uint8_t rnd[TASK_ID_BYTES];
        struct task *t = calloc(1, sizeof(*t));

        if (!t || !(t->runner = calloc(1, sizeof(struct client)))) {
                free(t);
                return NULL;
        }
        t->b = b;
        randombytes_buf(rnd, sizeof(rnd));
        sodium_bin2hex(t->id, sizeof(t->id), rnd, sizeof(rnd));
        snprintf(t->tool, sizeof(t->tool), "%s", tool);
        t->required = required;
        t->created_ms = t->updated_ms = clock_ms(CLOCK_REALTIME);
        t->arguments = arguments ? json_incref(arguments) : json_object();
        /* The call is made again after tasks/update: its _meta without progress (nobody to tell). */
        t->meta = json_is_object(meta) ? json_deep_copy(meta) : json_object();
        json_object_del(t->meta, "progressToken");
        t->answers = json_object();
        t->asked = json_object();
        t->waiter = c;
        t->waiter_id = json_incref(id);
        c->inflight++;
        *t->runner = (struct client) {
                .b = b, .fd = -1, .have_preamble = true, .principal = c->principal, .era = ERA_MODERN, .task = t,
        };
        snprintf(t->runner->server, sizeof(t->runner->server), "%s", c->server);
        t->runner->next = b->clients;
        b->clients = t->runner;
        t->next = b->tasks;
        b->tasks = t;
        b->n_tasks++;
        return t;
}

bool tasks_call(struct client *c, struct upstream *u, json_t *id, const char *tool, json_t *arguments,
                json_t *meta, json_t *params, bool approval) {
        const char *support = tasks_tool_support(upstream_tool(u, tool));
        _cleanup_json_ json_t *extra = NULL;
        struct task *t;
        int r;

        if (!support)
                return false;
        if (!tasks_negotiated(meta)) {
                if (!streq(support, "required"))
                        return false;
                client_send(c, jsonrpc_error(id, MCP_MISSING_CLIENT_CAPABILITY, "Missing required client capability: "
                                             "tool runs only as a task (" TASKS_EXTENSION ")",
                                             json_pack("{s:{s:{s:{}}}}", "requiredCapabilities", "extensions",
                                                       TASKS_EXTENSION)));
                return true;
        }
        if (approval)
                return false;
        tasks_expire(c->b);
        if (!make_room(c->b, c, true, TASKS_MAX_PER_PRINCIPAL) || !make_room(c->b, c, false, TASKS_MAX)) {
                refuse_too_many(c, id, tool);
                return true;
        }
        t = task_new(c, id, tool, streq(support, "required"), arguments, meta);
        if (!t) {
                client_send(c, jsonrpc_error(id, JSONRPC_INTERNAL_ERROR, "Internal error", NULL));
                return log_oom(), true;
        }
        r = sd_event_add_time_relative(c->b->event, &t->grace, CLOCK_MONOTONIC, TASK_GRACE_MS * 1000ULL,
                                       timer_accuracy_usec(TASK_GRACE_MS * 1000ULL), on_grace, t);
        if (r < 0)
                log_error_errno(r, "Failed to arm a task's grace timer: %m");
        /* A retry of an MRTR round that came before the task: its answers and state go to the worker. */
        extra = mcp_retry_extra(params);
        run(t, extra);  /* t may be gone when it returns (answered synchronously) */
        return true;
}

/* ---- tasks/get, tasks/update, tasks/cancel ---- */

static void reply(struct client *c, json_t *id, json_t *result) {
        client_send(c, jsonrpc_result(id, mcp_finish_result(c, ERA_MODERN, result)));
}

/* The call is made again for the caller as it is now: the policy may have changed since the task was
 * created (a reload), and an HTTP caller's token with it. */
static bool may_resume(struct client *c, struct task *t) {
        const struct server_config *s = config_find_server(&c->b->config, c->server);
        const struct tool_policy *tp = s ? server_find_tool(s, t->tool) : NULL;

        if (!tp || tp->approval != APPROVAL_NONE || policy_missing_scope(&c->b->config, &c->principal, tp->scopes,
                                                                          tp->n_scopes))
                return false;
        t->runner->principal = c->principal;
        return true;
}

static void task_update(struct client *c, struct task *t, json_t *id, json_t *responses) {
        unsigned accepted = 0;
        const char *k;
        json_t *v;
        char detail[96];

        /* Only answers to outstanding requests count; anything else is ignored (SEP-2663). */
        if (t->status == TASK_INPUT_REQUIRED)
                json_object_foreach(responses, k, v)
                        if (json_object_get(t->input_requests, k) && json_is_object(v)) {
                                json_object_set(t->answers, k, v);
                                json_object_del(t->input_requests, k);
                                accepted++;
                        }
        snprintf(detail, sizeof(detail), "%u answer(s) accepted%s", accepted,
                 accepted && json_object_size(t->input_requests) == 0 ? "; resumed" : "");
        audit_task(t, AUDIT_TASK_UPDATED, detail);
        if (accepted) {
                t->updated_ms = clock_ms(CLOCK_REALTIME);
                if (json_object_size(t->input_requests) == 0 && !may_resume(c, t))
                        task_fail(t, JSONRPC_INVALID_PARAMS, "Permission denied: the policy no longer lets this "
                                  "caller run the tool");
                else if (json_object_size(t->input_requests) == 0) {
                        _cleanup_json_ json_t *extra = json_pack("{s:O}", "inputResponses", t->answers);
                        if (t->request_state)
                                json_object_set(extra, "requestState", t->request_state);
                        set_status(t, TASK_WORKING, NULL);
                        run(t, extra);
                }
        }
        reply(c, id, json_object());
}

static void task_cancel(struct client *c, struct task *t, json_t *id) {
        _cleanup_json_ json_t *round = json_integer(t->round);

        audit_task(t, AUDIT_TASK_CANCELLED, status_names[t->status]);
        if (!terminal(t)) {
                if (t->running) {
                        t->running = false;
                        upstream_cancel(upstream_get(t->b, t->runner->server), t->runner, round);
                }
                set_status(t, TASK_CANCELLED, "Cancelled by the client");
        }
        /* A finished task stays as it was: cancelling it again is acknowledged alike. */
        reply(c, id, json_object());
}

void tasks_handle(struct client *c, const char *method, json_t *id, json_t *params) {
        const char *task_id = json_string_value(json_object_get(params, "taskId"));
        json_t *responses = json_object_get(params, "inputResponses");
        struct task *t;

        if (!tasks_negotiated(json_object_get(params, "_meta")))
                return client_send(c, jsonrpc_error(id, MCP_MISSING_CLIENT_CAPABILITY, "Missing required client "
                                                    "capability: " TASKS_EXTENSION, json_pack("{s:{s:{s:{}}}}",
                                                    "requiredCapabilities", "extensions", TASKS_EXTENSION)));
        if (!task_id)
                return client_send(c, jsonrpc_error(id, JSONRPC_INVALID_PARAMS, "Invalid params: taskId must be a "
                                                    "string", NULL));
        if (streq(method, "tasks/update") && !json_is_object(responses))
                return client_send(c, jsonrpc_error(id, JSONRPC_INVALID_PARAMS, "Invalid params: inputResponses "
                                                    "must be an object", NULL));
        tasks_expire(c->b);
        t = task_find(c->b, c, task_id);
        if (!t)
                return client_send(c, jsonrpc_error(id, JSONRPC_INVALID_PARAMS, "Invalid params: task not found",
                                                    NULL));
        if (streq(method, "tasks/get"))
                reply(c, id, task_json(t, true));
        else if (streq(method, "tasks/update"))
                task_update(c, t, id, responses);
        else
                task_cancel(c, t, id);
}

void tasks_client_gone(struct broker *b, struct client *c) {
        if (c->task) {
                struct task *t = c->task;
                /* The runner is being freed by its owner (the server went away, the broker stops). */
                c->task = NULL;
                t->runner = NULL;
                task_free(t);
        }
        for (struct task *t = b->tasks, *n; t; t = n) {
                n = t->next;
                if (t->waiter != c)
                        continue;
                t->waiter = NULL;
                c->inflight--;
                /* Nobody knows the id of a task not yet announced: it is dropped, its call cancelled. */
                if (!t->announced)
                        task_free(t);
        }
}
