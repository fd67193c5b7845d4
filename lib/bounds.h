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

#define BASTION_NAME_BUF (BASTION_MAX_NAME + 1)

/* Replies queued for a client that does not read: past this the client is dropped, not buffered. */
#define BASTION_MAX_CLIENT_BACKLOG (16 * 1024 * 1024)
/* Requests queued to one worker (it reads its channel promptly; a stuck worker is timed out). */
#define BASTION_MAX_UPSTREAM_BACKLOG (64 * 1024 * 1024)
/* How long a worker may take to answer initialize + tools/list before it is cut off. */
#define BASTION_HANDSHAKE_TIMEOUT_MS 5000
/* How long bastiond waits for `bastion-broker --first-start` (a key, a store: milliseconds) before it
 * kills it; bastiond serves nothing while it waits. */
#define BASTION_FIRST_START_TIMEOUT_MS 10000

/* confirm approvals: how long a human has to answer, and how many single-use modern states may be
 * outstanding at once (their nonces are remembered until they expire). */
#define BASTION_CONFIRM_TIMEOUT_MS (5 * 60 * 1000)
#define BASTION_MAX_CONFIRM_STATES 4096
/* Of which one principal may hold this many (used states are remembered until they expire). */
#define BASTION_MAX_CONFIRM_STATES_PER_PRINCIPAL 256
/* resources/subscribe: URIs one legacy connection may watch. */
#define BASTION_MAX_SUBSCRIPTIONS 256
/* Requests (sampling, elicitation, roots) one worker call may have outstanding at its client. */
#define BASTION_MAX_RELAYS_PER_CALL 8
/* A sealed requestState is small; anything longer is not one of ours. */
#define BASTION_MAX_CONFIRM_STATE 1024

/* approver (four-eyes) approvals: how long a request waits for a decision and how many may wait. */
#define BASTION_APPROVAL_TTL_MS (60 * 60 * 1000)
#define BASTION_MAX_APPROVALS 1024
/* Of which one requester may have this many undecided at once. */
#define BASTION_MAX_APPROVALS_PER_PRINCIPAL 32

/* Audit log (broker/audit, bastion-audit(5)). One record is one line; tool arguments larger than
 * BASTION_AUDIT_MAX_ARGUMENTS are recorded as their size and BLAKE2b digest instead, so a record
 * always fits BASTION_AUDIT_MAX_RECORD and a verifier never has to hold more than that per line. */
#define BASTION_AUDIT_MAX_RECORD (256 * 1024)
#define BASTION_AUDIT_MAX_ARGUMENTS (64 * 1024)
/* Free text in a record (error messages, reasons, details) is cut at this many bytes. */
#define BASTION_AUDIT_MAX_TEXT 4096
/* Checkpoints bound how much of the tail is unsigned: at most this many records or seconds. */
#define BASTION_AUDIT_CHECKPOINT_RECORDS 1000
#define BASTION_AUDIT_CHECKPOINT_SEC 30
/* Group commit: a batched record reaches the disk at most this long after it was written. */
#define BASTION_AUDIT_GROUP_COMMIT_MS 50
/* Rotate the active file once it grows past this size. */
#define BASTION_AUDIT_ROTATE_BYTES (64ULL * 1024 * 1024)

/* Secrets store (broker/secrets): credentials are API keys and passwords, not bulk data. */
#define BASTION_SECRET_MAX_VALUE (64 * 1024)
#define BASTION_SECRET_MAX_NAME 128
#define BASTION_SECRETS_MAX_ENTRIES 1024

/* JSON Schema "pattern" (lib/schema.c): tool schemas come from workers, which the broker does not
 * trust, and glibc's regcomp() copies the operand of every bounded repeat, so (a{100}){100}… would
 * cost it gigabytes. Patterns are bounded in length and in the size of their expansion. */
#define BASTION_MAX_SCHEMA_PATTERN 512
#define BASTION_MAX_SCHEMA_PATTERN_COST 4096

/* Sandbox (seccomp/). fds a confined process is handed at spawn (channel, credential, …). */
#define BASTION_SANDBOX_MAX_FDS 8
/* After lockdown: SQLite holds the db, its journal or WAL and the directory; the channel and a
 * passed credential come on top. 64 leaves room without allowing fd-table ballooning. */
#define BASTION_SANDBOX_MAX_OPEN_FILES 64
/* The broker and the front after their lockdown: one fd per client connection, plus worker
 * channels, the audit log, the event loop's own fds and passed fds in flight. */
#define BASTION_SANDBOX_HUB_MAX_OPEN_FILES (BASTION_MAX_CLIENTS + 512)
/* Tasks of the confined uid: a worker runs one thread; a little headroom, no fork bomb. */
#define BASTION_SANDBOX_MAX_TASKS 16
/* The worker's tmpfs root holds only mount points (the state dir lives on the host fs). */
#define BASTION_SANDBOX_ROOT_SIZE "256k"
#define BASTION_SANDBOX_ROOT_INODES "64"
/* sandbox_attest_wait() polls /proc at this interval while a child finishes its lockdown. */
#define BASTION_SANDBOX_ATTEST_POLL_US 500

/* Supervisor (supervisor/). Worker uid ranges are checked against the account database one uid at
 * a time at load; a range larger than this is a typo, not a plan. */
#define BASTION_MAX_WORKER_UID_RANGE 65536
/* A worker is attested once its lockdown is complete (seccomp is the last step, then it closes its
 * filter socket, which bastiond watches); when that says nothing, it is polled this often. It must
 * get there within the timeout, or it is killed as unconfined. */
#define BASTION_ATTEST_POLL_MS 2
#define BASTION_ATTEST_TIMEOUT_MS 5000
/* A child asked to stop (SIGTERM) gets this long before SIGKILL. */
#define BASTION_KILL_TIMEOUT_MS 1000
/* Control socket: concurrent bastionctl connections and the size of one request line. */
#define BASTION_MAX_CONTROL_CLIENTS 64
#define BASTION_MAX_CONTROL_LINE (64 * 1024)
/* bastion.conf is read into memory whole; a real one is a few KiB. */
#define BASTION_MAX_CONFIG_FILE (1024 * 1024)
/* bastion-stdio relays bytes, not messages: this much per direction is buffered before it stops
 * reading that side and lets the pipe or socket apply back-pressure. */
#define BASTION_STDIO_BUFFER (64 * 1024)

/* Bearer tokens (broker/auth, docs/auth.md). A signed access token with a handful of claims is well
 * under 2 KiB; 8 KiB is the common header-size budget of HTTP servers, and nothing larger is parsed. */
#define BASTION_JWT_MAX_TOKEN 8192
/* The JWKS document the broker reads: a few public keys plus rotation spares. */
#define BASTION_JWKS_MAX_DOC (256 * 1024)
#define BASTION_JWKS_MAX_KEYS 64
#define BASTION_JWK_MAX_KID 128
/* RSA below 2048 bits is breakable; above 8192 bits a verify costs enough to be a DoS lever. */
#define BASTION_JWT_RSA_MIN_BITS 2048
#define BASTION_JWT_RSA_MAX_BITS 8192
/* Claims copied into a principal: bounded so a verified token is a fixed-size record (and cacheable). */
#define BASTION_JWT_MAX_AUD 16
#define BASTION_JWT_MAX_SUB 255
#define BASTION_JWT_MAX_SCOPE 1023
#define BASTION_JWT_MAX_ROLE 127
#define BASTION_JWT_MAX_TENANT 255
/* Clock skew tolerated between the authorization server and us for exp, nbf and iat. */
#define BASTION_JWT_DEFAULT_LEEWAY_SEC 60
/* Verified-token cache: entries (about 2 KiB each) before it is cleared and refilled. */
#define BASTION_JWT_CACHE_ENTRIES 4096
/* bastionctl reads one answer line from the control socket; a workers list is a few KiB. */
#define BASTION_MAX_CONTROL_REPLY (4 * 1024 * 1024)

/* The front (front/, the `http` group of bastion.conf(5)). Connections: one fd each after the
 * front's lockdown, within BASTION_SANDBOX_HUB_MAX_OPEN_FILES; the default serves the 1,000
 * concurrent clients. One address gets a fraction, so a single host cannot take every slot. */
#define BASTION_HTTP_MAX_CONNECTIONS BASTION_MAX_CLIENTS
#define BASTION_HTTP_DEFAULT_MAX_CONNECTIONS BASTION_MAX_CLIENTS
#define BASTION_HTTP_DEFAULT_MAX_PER_ADDRESS 64
/* TLS handshake plus one whole request (head and body) must arrive within this of the connection or
 * of the request's first byte: slowloris clients are cut off. A keep-alive connection may idle (and a
 * client may leave a response unread) for the idle timeout. */
#define BASTION_HTTP_DEFAULT_HEADER_TIMEOUT_MS 10000
#define BASTION_HTTP_DEFAULT_IDLE_TIMEOUT_MS 60000
#define BASTION_HTTP_MAX_TIMEOUT_MS 3600000
/* Response bytes queued for one client (a whole response, or SSE events it has not read yet): past
 * this the client is too slow, its connection is closed and the broker is told (FRONT_CANCEL). */
#define BASTION_HTTP_MAX_OUTPUT (8 * 1024 * 1024)
