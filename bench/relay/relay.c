// relay is the bench's floor for bulk transfer: the least a proxy can do to
// move bytes between two TCP connections on Linux. Per connection, one
// thread per direction loops splice(2) socket -> pipe -> socket on blocking
// descriptors. There is no event loop, no runtime, no timers, no counters,
// no logging: what its CPU time shows is what the kernel charges a process
// for receiving one hop and sending on the next with splice, and nothing
// else. Any proxy's CPU per GB above this figure is the proxy's own cost.
//
// It is C, not Go, on purpose: a Go goroutine blocked in a syscall keeps
// the runtime's sysmon thread waking every 20 µs to retake its P, which is
// bookkeeping the floor must not contain.
//
//	relay LISTEN_PORT=BACKEND_PORT [...]     (both on 127.0.0.1)
//
// Built by the bench with `cc -O2 -pthread`; stopped with SIGTERM.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "port.h"

// PIPE_SIZE is tierlb's pipe size (proxy/pipe.go), so the floor moves the
// same chunks per splice as tierlb does.
#define PIPE_SIZE (256 << 10)

struct conn {
	int client, backend;
	atomic_int open; // directions still running; the last closes both
};

struct pump {
	struct conn *c;
	int src, dst;
};

static void release(struct conn *c) {
	if (atomic_fetch_sub(&c->open, 1) == 1) {
		close(c->client);
		close(c->backend);
		free(c);
	}
}

// pump moves src to dst until src's end of stream or an error, then
// half-closes dst so the other side sees the end too.
static void *pump(void *arg) {
	struct pump p = *(struct pump *)arg;
	free(arg);
	int pipefd[2];
	if (pipe(pipefd) == 0) {
		int size = fcntl(pipefd[1], F_SETPIPE_SZ, PIPE_SIZE);
		if (size <= 0)
			size = 64 << 10; // the kernel's default pipe
		for (;;) {
			ssize_t n = splice(p.src, NULL, pipefd[1], NULL, size, SPLICE_F_MOVE);
			if (n <= 0)
				break;
			while (n > 0) {
				ssize_t m = splice(pipefd[0], NULL, p.dst, NULL, n, SPLICE_F_MOVE);
				if (m <= 0)
					goto done;
				n -= m;
			}
		}
	done:
		close(pipefd[0]);
		close(pipefd[1]);
	}
	shutdown(p.dst, SHUT_WR);
	release(p.c);
	return NULL;
}

static int start_pump(struct conn *c, int src, int dst) {
	struct pump *p = malloc(sizeof *p);
	if (p == NULL)
		return -1;
	*p = (struct pump){c, src, dst};
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 << 10);
	int err = pthread_create(&t, &attr, pump, p);
	pthread_attr_destroy(&attr);
	if (err != 0) {
		free(p);
		return -1;
	}
	return 0;
}

static struct sockaddr_in loopback(int port) {
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

struct route {
	int listener, backend_port;
};

static void *serve(void *arg) {
	struct route r = *(struct route *)arg;
	for (;;) {
		int client = accept(r.listener, NULL, NULL);
		if (client < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE)
				continue;
			perror("relay: accept");
			exit(2);
		}
		int backend = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = loopback(r.backend_port);
		if (backend < 0 || connect(backend, (struct sockaddr *)&a, sizeof a) != 0) {
			perror("relay: connect backend");
			close(client);
			if (backend >= 0)
				close(backend);
			continue;
		}
		int one = 1;
		setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(backend, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = malloc(sizeof *c);
		if (c == NULL) {
			close(client);
			close(backend);
			continue;
		}
		c->client = client;
		c->backend = backend;
		atomic_init(&c->open, 2);
		if (start_pump(c, client, backend) != 0) {
			// No thread runs: close both ends as the two pumps would.
			atomic_store(&c->open, 1);
			release(c);
			continue;
		}
		if (start_pump(c, backend, client) != 0) {
			shutdown(client, SHUT_RDWR); // ends the running pump, which releases
			release(c);
		}
	}
	return NULL;
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: relay LISTEN_PORT=BACKEND_PORT [...]\n");
		return 1;
	}
	// A splice into a socket whose peer has gone raises SIGPIPE, which
	// would end every connection at once; the pump sees EPIPE instead.
	signal(SIGPIPE, SIG_IGN);
	pthread_t last;
	for (int i = 1; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		int lport = eq ? port(argv[i], eq) : -1;
		int bport = eq ? port(eq + 1, eq + 1 + strlen(eq + 1)) : -1;
		if (lport < 0 || bport < 0) {
			fprintf(stderr, "relay: %s: want LISTEN_PORT=BACKEND_PORT\n", argv[i]);
			return 1;
		}
		int ln = socket(AF_INET, SOCK_STREAM, 0);
		int one = 1;
		struct sockaddr_in a = loopback(lport);
		if (ln < 0 || setsockopt(ln, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
		    bind(ln, (struct sockaddr *)&a, sizeof a) != 0 || listen(ln, 1024) != 0) {
			fprintf(stderr, "relay: listen on 127.0.0.1:%d: %s\n", lport, strerror(errno));
			return 2;
		}
		struct route *r = malloc(sizeof *r);
		if (r == NULL)
			return 2;
		*r = (struct route){ln, bport};
		if (pthread_create(&last, NULL, serve, r) != 0) {
			fprintf(stderr, "relay: thread for 127.0.0.1:%d failed\n", lport);
			return 2;
		}
	}
	pthread_join(last, NULL); // serve never returns; SIGTERM ends the process
	return 0;
}
