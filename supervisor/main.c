/* bastiond --config FILE [--check-config]: start-up, signals (SIGHUP reload, SIGTERM/SIGINT stop),
 * readiness and status for systemd, and the status/workers answers of the control socket. */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>

#include "bastiond.h"
#include "chan.h"
#include "conf_load.h"
#include "log.h"
#include "util.h"

static void update_status(struct supervisor *sup) {
        unsigned running = 0, failed = 0, total = 0;
        _cleanup_free_ char *s = NULL;

        for (struct child *w = sup->workers; w; w = w->next, total++) {
                running += w->state == CHILD_RUNNING;
                failed += w->state == CHILD_FAILED;
        }
        if (asprintf(&s, "broker %s; %s%s%s%u of %u workers running, %u failed", sup->broker_ready ? "ready" :
                     child_state_to_string(sup->broker.state), front_configured(sup) ? "front " : "",
                     front_configured(sup) ? child_state_to_string(sup->front.state) : "",
                     front_configured(sup) ? "; " : "", running, total, failed) < 0)
                return;
        if (sup->status && streq(sup->status, s))
                return;
        (void) sd_notifyf(false, "STATUS=%s", s);
        free(sup->status);
        sup->status = TAKE_PTR(s);
}

void supervisor_check_ready(struct supervisor *sup) {
        unsigned failed = 0, n = 0;

        update_status(sup);
        if (sup->ready_notified || !sup->broker_ready || sup->stopping)
                return;
        if (front_configured(sup) && sup->front.state != CHILD_RUNNING)
                return;
        for (struct child *w = sup->workers; w; w = w->next, n++) {
                if (w->state != CHILD_RUNNING && w->state != CHILD_FAILED)
                        return;
                failed += w->state == CHILD_FAILED;
        }
        sup->ready_notified = true;
        (void) sd_notify(false, "READY=1");
        log_info("ready: broker and %u of %u workers running, %u failed", n - failed, n, failed);
}

void supervisor_check_stopped(struct supervisor *sup) {
        if (!sup->stopping || sup->exiting || sup->broker.pid > 0 || sup->front.pid > 0)
                return;
        for (struct child *w = sup->workers; w; w = w->next)
                if (w->pid > 0)
                        return;
        sup->exiting = true;
        log_info("all children have exited");
        (void) sd_event_exit(sup->event, 0);
}

static void stop_workers(struct supervisor *sup) {
        struct child *next;

        for (struct child *w = sup->workers; w; w = next) {
                next = w->next;
                child_stop(w, SIGTERM, false, false);
        }
}

static int on_stop_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        struct supervisor *sup = userdata;

        if (sup->broker.pid > 0) {
                log_warning("broker (pid %d) did not finish within %d ms; terminating it", (int) sup->broker.pid,
                            BASTION_STOP_DEADLINE_MS);
                child_stop(&sup->broker, SIGTERM, false, false);
        }
        return 0;
}

static int on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct supervisor *sup = userdata;

        if (sup->stopping)
                return 0;
        sup->stopping = true;
        (void) sd_notify(false, "STOPPING=1");
        log_info("received SIG%s; stopping", sigabbrev_np((int) si->ssi_signo));
        sup->broker.timer_source = sd_event_source_disable_unref(sup->broker.timer_source);
        /* No new HTTP requests: the front goes first, closing its connections. */
        front_stop(sup);
        if (broker_up(sup)) {
                sup->broker.stop_requested = true;
                sup->broker.state = CHILD_STOPPING;
                (void) broker_send(sup, CHAN_STOP, 0, json_pack("{s:i}", "deadline_ms", BASTION_STOP_DEADLINE_MS), -1);
                (void) sd_event_add_time_relative(sup->event, &sup->stop_timer, CLOCK_MONOTONIC,
                                                  (uint64_t) BASTION_STOP_DEADLINE_MS * 1000, 0, on_stop_deadline, sup);
        } else {
                stop_workers(sup);
        }
        supervisor_check_stopped(sup);
        return 0;
}

static int on_reload_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        json_decref(supervisor_reload(userdata));
        return 0;
}

static int supervisor_start(struct supervisor *sup) {
        static const int signals[] = { SIGTERM, SIGINT, SIGHUP };
        sigset_t mask;
        int r;

        /* sd-event needs SIGCHLD blocked for child sources; the others arrive through signalfd. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        for (size_t i = 0; i < ELEMENTSOF(signals); i++)
                sigaddset(&mask, signals[i]);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Cannot block signals: %m");
        (void) signal(SIGPIPE, SIG_IGN);
        r = sd_event_default(&sup->event);
        if (r < 0)
                return log_error_errno(r, "Cannot create the event loop: %m");
        for (size_t i = 0; i < ELEMENTSOF(signals); i++) {
                r = sd_event_add_signal(sup->event, NULL, signals[i],
                                        signals[i] == SIGHUP ? on_reload_signal : on_stop_signal, sup);
                if (r < 0)
                        return log_error_errno(r, "Cannot watch signal %d: %m", signals[i]);
        }
        r = sd_event_set_watchdog(sup->event, true);
        if (r < 0)
                log_warning_errno(r, "Cannot set up the watchdog (WATCHDOG_USEC/WATCHDOG_PID): %m; running without");
        r = jwks_watch(sup);
        if (r < 0)
                return r;
        r = setup_directories(&sup->config);
        if (r < 0)
                return r;
        r = setup_listen_socket(sup->config.socket_path, 0666, 0, &sup->listen_fd);
        if (r < 0)
                return r;
        r = front_listen(sup);
        if (r < 0)
                return r;
        r = control_start(sup);
        if (r < 0)
                return r;
        for (size_t i = 0; i < sup->config.n_servers; i++)
                if (!worker_new(sup, sup->config.servers[i].name))
                        return log_oom();
        log_info("bastiond %s starting: %s, %zu server(s)", PACKAGE_VERSION, sup->config_path, sup->config.n_servers);
        (void) broker_spawn(sup);
        return 0;
}

static void supervisor_done(struct supervisor *sup) {
        control_stop(sup);
        while (sup->workers)
                worker_free(sup->workers);
        child_free(&sup->broker);
        child_free(&sup->front);
        safe_close(sup->http_fd);
        safe_close(sup->front_broker_fd);
        if (sup->listen_fd >= 0) {
                remove_socket(sup->config.socket_path);
                safe_close(sup->listen_fd);
        }
        if (sup->config.control_socket_path)
                remove_socket(sup->config.control_socket_path);
        sd_event_source_disable_unref(sup->stop_timer);
        audit_flags_done(sup);
        sd_event_unref(sup->event);
        config_free(&sup->config);
        free(sup->status);
}

static void help(void) {
        printf("Usage: bastiond --config FILE [--check-config]\n\n"
               "The Bastion supervisor: starts the broker and one sandboxed worker per configured server.\n\n"
               "  -c, --config FILE   configuration file (bastion.conf(5))\n"
               "      --check-config  check the configuration, print \"FILE: ok\" or the error, and exit\n"
               "  -h, --help          show this help\n"
               "      --version       show the version\n\n"
               "Runs in the foreground and logs to stderr. SIGHUP reloads, SIGTERM stops. See bastiond(8).\n");
}

static int parse_args(int argc, char **argv, const char **ret_config, bool *ret_check) {
        enum { ARG_CHECK = 0x100, ARG_VERSION };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "check-config", no_argument, NULL, ARG_CHECK },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c': *ret_config = optarg; break;
                case ARG_CHECK: *ret_check = true; break;
                case 'h': help(); return 0;
                case ARG_VERSION: printf("bastiond %s\n", PACKAGE_VERSION); return 0;
                default: return -EINVAL;
                }
        if (optind < argc || !*ret_config) {
                fprintf(stderr, optind < argc ? "bastiond: unexpected argument %s\n" : "bastiond: --config FILE is required%s\n",
                        optind < argc ? argv[optind] : "");
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char **argv) {
        struct supervisor sup = { .listen_fd = -1, .control_fd = -1, .http_fd = -1, .front_broker_fd = -1 };
        bool check = false;
        char *error = NULL;
        int r;

        log_open("bastiond");
        /* The TLS key passes through jansson on its way to the front (supervisor/front.c). */
        json_set_alloc_funcs(malloc, free_wiped);
        r = parse_args(argc, argv, &sup.config_path, &check);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        r = config_load(sup.config_path, &sup.config, &error);
        if (r < 0) {
                if (check)
                        fprintf(stderr, "%s\n", error ?: "out of memory");
                else
                        log_error("%s", error ?: "out of memory");
                free(error);
                return 1;
        }
        if (check) {
                printf("%s: ok\n", sup.config_path);
                config_free(&sup.config);
                return 0;
        }
        if (geteuid() != 0) {
                log_error("bastiond must run as root (it creates namespaces and gives each worker its own uid)");
                config_free(&sup.config);
                return 1;
        }
        umask(0022);
        child_init(&sup.broker, &sup, CHILD_BROKER, strdup("broker"));
        child_init(&sup.front, &sup, CHILD_FRONT, strdup("front"));
        sup.started_usec = now_usec();
        r = supervisor_start(&sup);
        if (r >= 0)
                r = sd_event_loop(sup.event);
        if (r < 0) {
                /* Children die with us (PDEATHSIG); take them down in order anyway. */
                if (sup.broker.pid > 0)
                        (void) kill(sup.broker.pid, SIGKILL);
                if (sup.front.pid > 0)
                        (void) kill(sup.front.pid, SIGKILL);
                for (struct child *w = sup.workers; w; w = w->next)
                        if (w->pid > 0)
                                (void) kill(w->pid, SIGKILL);
        } else {
                log_info("stopped");
        }
        supervisor_done(&sup);
        return r < 0 ? 1 : 0;
}
