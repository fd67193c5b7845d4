/* The io.modelcontextprotocol/tasks extension (SEP-2663, 2026-07-28): the broker runs a tools/call of a
 * task-supporting tool as a task, keeps its state, and answers tasks/get, tasks/update and tasks/cancel
 * itself (docs/broker.md, Tasks). Workers stay synchronous MCP servers: a task is one worker call at a
 * time, made by a client of the broker's own (struct client with ->task set) that outlives the request
 * which created it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "broker/broker.h"

#define TASKS_EXTENSION "io.modelcontextprotocol/tasks"

/* Task ids are 128 bits from libsodium, in hex: unguessable (SEP-2663 security considerations), though
 * an id alone grants nothing: a task answers only the principal (and tenant) that created it. */
#define TASK_ID_BYTES 16
#define TASK_ID_LEN (2 * TASK_ID_BYTES)
/* How long the broker waits for a worker's first answer before it makes the call a task. A worker that
 * asks for input at once (an InputRequiredResult) is answered synchronously, as SEP-2663 wants MRTR
 * rounds before task creation; an optional-task tool that finishes at once is answered with its result
 * (the immediate-result shortcut). Short, because every task's CreateTaskResult waits this long. */
#define TASK_GRACE_MS 200
/* A task (and its result) is kept this long after its creation, then forgotten; a task still running
 * then is cancelled at its worker. */
#define TASK_TTL_MS (60 * 60 * 1000)
/* The polling interval suggested to clients. */
#define TASK_POLL_INTERVAL_MS 500
/* Tasks one principal may hold on one broker. Finished ones are forgotten oldest first to make room, so
 * this bounds the unfinished ones; past it a new task is refused ("Too many tasks"). */
#define TASKS_MAX_PER_PRINCIPAL 32
/* Tasks in the whole broker, same rule. A task keeps at most one result line (BASTION_MAX_LINE), so
 * the table holds at most TASKS_MAX MiB of results. */
#define TASKS_MAX 256

/* True when the request's _meta clientCapabilities declare the extension (2026-07-28: per request). */
bool tasks_negotiated(const json_t *meta);
/* Whether a tool's tools/list entry declares task support: "optional" or "required" (else NULL). */
const char *tasks_tool_support(const json_t *tool);
/* A tools/call that may become a task. Returns false when the call should run synchronously as usual;
 * true when it was handled: refused (-32021 for a tool that requires tasks from a client that did not
 * negotiate them, or too many tasks) or started (its answer, synchronous or a CreateTaskResult, follows).
 * `approval`: the tool needs an approval first, which runs synchronously (never as a task). */
bool tasks_call(struct client *c, struct upstream *u, json_t *id, const char *tool, json_t *arguments,
                json_t *meta, json_t *params, bool approval);
/* tasks/get, tasks/update, tasks/cancel of a 2026-07-28 request whose _meta has been checked. */
void tasks_handle(struct client *c, const char *method, json_t *id, json_t *params);
/* What the worker call of a task answers (and anything else sent to its client); steals msg. */
void tasks_runner_send(struct client *c, json_t *msg);
/* A client is freed: the task it runs is dropped; a task it waits for and was never announced too. */
void tasks_client_gone(struct broker *b, struct client *c);
