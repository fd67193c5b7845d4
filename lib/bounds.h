/* Every bound of the system in one place, each with its reason. */
#pragma once

/* One MCP message on any line-framed channel. Tool arguments and results are small business
 * records; 1 MiB leaves room for large lists while keeping a hostile peer from ballooning memory. */
#define BASTION_MAX_LINE (1024 * 1024)

/* Nesting depth of any JSON value we accept from a peer (jansson recursion is bounded by this). */
#define BASTION_MAX_JSON_DEPTH 64

/* Default bound on calls a single client connection may have in flight at once. */
#define BASTION_DEFAULT_MAX_INFLIGHT 16

/* Default per-call deadline; a worker that has not answered by then gets the call failed. */
#define BASTION_DEFAULT_CALL_TIMEOUT_MS 30000

/* Supervisor <-> broker frames: bounded so a compromised broker cannot make the supervisor allocate. */
#define BASTION_MAX_CHAN_PAYLOAD (4 * 1024 * 1024)
#define BASTION_MAX_CHAN_FDS 4

/* Concurrent client connections the broker accepts on its local socket. */
#define BASTION_MAX_CLIENTS 1024

/* Server names are path components and endpoint names: short, lowercase, no surprises. */
#define BASTION_MAX_NAME 63

/* Restart backoff: first retry after 100 ms, doubling up to 10 s; 5 crashes within 60 s = failed. */
#define BASTION_BACKOFF_MIN_MS 100
#define BASTION_BACKOFF_MAX_MS 10000
#define BASTION_CRASHLOOP_COUNT 5
#define BASTION_CRASHLOOP_WINDOW_MS 60000

/* Graceful stop: in-flight calls get this long before the children are killed. */
#define BASTION_STOP_DEADLINE_MS 5000

/* The shim preamble line ("server NAME\n") and its answer are tiny. */
#define BASTION_MAX_PREAMBLE 256
