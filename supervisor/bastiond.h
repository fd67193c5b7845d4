/* bastiond: the supervisor. It loads the configuration, creates the sockets, spawns the broker and
 * one sandboxed worker per server, attests each worker before the broker may route to it, restarts
 * what dies, reloads on SIGHUP, stops on SIGTERM, and answers bastionctl on the control socket.
 * It never reads secrets and never speaks MCP.
 *
 *   main.c      arguments, signals, reload, graceful stop, sd_notify
 *   setup.c     directories and listening sockets
 *   child.c     what every child shares: exit handling, crash accounting, backoff, stop
 *   broker.c    spawning the broker and its channel (lib/chan.h)
 *   worker.c    spawning a worker, attestation, announcing it to the broker
 *   front.c     the HTTP listener and bastion-front (spawn, attestation, its channel to the broker)
 *   reload.c    SIGHUP / bastionctl reload
 *   status.c    the status and workers answers
 *   audit_flags.c  the append-only inode flag on the broker's audit files
 *   control.c   the control socket (JSON lines, root or admin group) */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "bounds.h"
#include "chan.h"
#include "conf.h"
#include "linebuf.h"
#include "sandbox.h"

enum child_kind {
        CHILD_BROKER,
        CHILD_WORKER,
        CHILD_FRONT,            /* bastion-front, when the http group is configured */
};

enum child_state {
        CHILD_STARTING,         /* spawned, not yet ready (broker) / attested (worker); or waiting for the broker */
        CHILD_RUNNING,
        CHILD_BACKOFF,          /* died; a restart is scheduled */
        CHILD_FAILED,           /* crash loop: not restarted until the next reload */
        CHILD_STOPPING,         /* asked to stop */
        _CHILD_STATE_MAX,
};

struct supervisor;

/* "worker inventory" / "broker" in log lines. */
#define CHILD_FMT "%s%s"
#define CHILD_ARGS(c) (c)->kind == CHILD_WORKER ? "worker " : "", (c)->name

struct child {
        struct supervisor *sup;
        enum child_kind kind;
        char *name;                     /* "broker", or the server name */
        enum child_state state;
        pid_t pid;                      /* 0 when not running */
        uint64_t generation;            /* workers: bumped at every spawn, announced to the broker */
        unsigned restarts;              /* spawns after the first */
        uint64_t crashes[BASTION_CRASHLOOP_COUNT];      /* CLOCK_MONOTONIC µs of the last crashes, a ring */
        unsigned n_crashes;             /* total, the ring index is n_crashes % COUNT */
        int chan_fd;                    /* broker: our end of its channel; worker: the broker's end until announced */
        sd_event_source *child_source, *timer_source;
        sd_event_source *io_source;     /* broker: its channel; worker: its ready fd until attested */
        enum sandbox_role attest_role;
        uid_t attest_uid;
        uint64_t attest_deadline;
        struct sandbox_attestation att;
        bool attested;
        char kill_reason[160];          /* why we killed it, for the broker's CHAN_WORKER_DOWN */
        char fail_reason[160];          /* why it is failed without a crash loop (no credential), for status */
        uint32_t credential_request;    /* workers: id of the CHAN_CREDENTIAL_REQ its spawn waits for; 0 none */
        bool stop_requested;            /* we asked it to go: its death is not a crash */
        bool respawn;                   /* ... and it is started again at once (config change, new broker) */
        bool remove;                    /* ... and then forgotten (server removed) */
        struct child *next;
};

struct control_client;

struct supervisor {
        sd_event *event;
        const char *config_path;
        struct bastion_config config;
        uint64_t started_usec;          /* CLOCK_MONOTONIC */
        int listen_fd;                  /* the local MCP socket, handed to every broker */
        int control_fd;
        sd_event_source *control_source;
        struct control_client *control_clients;
        unsigned n_control_clients;
        struct child broker;
        struct child *workers;
        struct child front;
        int http_fd;                    /* the TCP listener (bound, or from socket activation), or -1 */
        int front_broker_fd;            /* the broker's end of the front's channel until it is attested */
        bool broker_ready;              /* the current broker said CHAN_READY */
        bool ready_notified;
        bool stopping;
        bool exiting;                   /* every child is gone; the loop is ending */
        sd_event_source *stop_timer;
        uint32_t next_request_id;
        unsigned reloads;
        char *status;                   /* the last STATUS= sent */
        sd_event_source *audit_watch;   /* inotify on the audit directory (audit_flags.c) */
        char *audit_watch_dir;
};

/* setup.c */
int setup_directories(const struct bastion_config *c);
int setup_server_directory(const struct server_config *s);
/* mkdir -p with mode for the directories it creates; existing ones keep theirs. */
int mkdir_parents(const char *path, mode_t mode);
int setup_listen_socket(const char *path, mode_t mode, gid_t gid, int *ret_fd);
void remove_socket(const char *path);

/* child.c */
const char *child_state_to_string(enum child_state s);
void child_init(struct child *c, struct supervisor *sup, enum child_kind kind, char *name);
void child_free(struct child *c);
/* Common to both kinds once the spawn itself succeeded. */
int child_watch(struct child *c, pid_t pid);
/* A spawn that failed counts as a crash. */
void child_spawn_failed(struct child *c, int error);
/* Asks a child to go (sig, then SIGKILL after BASTION_KILL_TIMEOUT_MS); respawn/remove say what
 * happens once it is gone. A child without a process settles at once. */
void child_stop(struct child *c, int sig, bool respawn, bool remove);
/* Attests the worker once its lockdown is complete, which the hang-up of ready_fd (from
 * sandbox_spawn_notify(), owned from here on; -1: none) announces; without one, or when the worker
 * still looks unconfined then, sandbox_attest() is polled up to the deadline. Then worker_attested(),
 * or the worker is killed with the reason logged. (The broker is attested when it says ready.) */
void child_attest(struct child *c, enum sandbox_role role, uid_t uid, int ready_fd);
int child_spawn(struct child *c);
uint64_t now_usec(void);

/* broker.c */
int broker_spawn(struct supervisor *sup);
int broker_send(struct supervisor *sup, uint32_t type, uint32_t id, json_t *payload, int fd);
int broker_send_config(struct supervisor *sup);
bool broker_up(const struct supervisor *sup);
void broker_exited(struct supervisor *sup);

/* worker.c */
struct child *worker_new(struct supervisor *sup, const char *name);
struct child *worker_find(struct supervisor *sup, const char *name);
int worker_spawn(struct child *w);
/* The broker's CHAN_CREDENTIAL: continues the spawn that asked for it (the message's fd is taken). */
int worker_credential_received(struct supervisor *sup, struct chan_msg *m);
void worker_send_down(struct child *w, const char *reason, bool failed);
void worker_announce(struct child *w);
void worker_attested(struct child *w);
void worker_exited(struct child *w, const char *reason, bool failed);
void worker_free(struct child *w);

/* audit_flags.c — the append-only inode flag on the audit files, which the broker cannot set */
/* Before a broker is spawned: the newest files lose the flag, so its recovery can cut a torn tail. */
void audit_flags_release(struct supervisor *sup);
/* Before every broker start: the audit directory exists (parents 0755), is 0700 and, with every audit
 * file in it, owned by the broker's uid and gid (the append-only flag is lifted for the chown only). */
int audit_dir_prepare(struct supervisor *sup, uid_t uid);
/* When the broker is ready: every audit file gets the flag, and so does each file it creates later. */
void audit_flags_seal(struct supervisor *sup);
void audit_flags_done(struct supervisor *sup);

/* jwks.c — the OAuth key set, read here and sent to the broker (CHAN_JWKS) */
int jwks_send(struct supervisor *sup);
int jwks_watch(struct supervisor *sup);

/* front.c — bastion-front and its TCP listener (the http group) */
bool front_configured(const struct supervisor *sup);
int front_listen(struct supervisor *sup);
int front_spawn(struct supervisor *sup);
void front_attested(struct child *f);
void front_exited(struct child *f);
void front_broker_up(struct supervisor *sup);
void front_broker_gone(struct supervisor *sup);
void front_reload(struct supervisor *sup);
void front_stop(struct supervisor *sup);

/* control.c */
int control_start(struct supervisor *sup);
void control_stop(struct supervisor *sup);
void control_approvals_reply(struct supervisor *sup, uint32_t id, json_t *payload);
void control_broker_gone(struct supervisor *sup);

/* main.c */
void supervisor_check_ready(struct supervisor *sup);
void supervisor_check_stopped(struct supervisor *sup);
json_t *supervisor_reload(struct supervisor *sup);
json_t *supervisor_status_json(struct supervisor *sup);
json_t *supervisor_workers_json(struct supervisor *sup);
