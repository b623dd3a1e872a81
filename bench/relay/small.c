// small is the bench's floor for small requests: the least a proxy can do
// to carry small messages between two TCP connections on Linux, on one
// thread. Each direction of a connection has one 16 KiB buffer: a receive
// into it, a send out of it, and nothing read from that side again until
// the send is done, so a request costs a receive and a send on each hop and
// nothing else. There are no timers, counters, logs or runtime; what its CPU
// time shows is what the kernel charges for those calls and for the wakeups
// that bring them, and any proxy's CPU per request above it is its own.
//
//	small epoll LISTEN_PORT=BACKEND_PORT [...]   edge-triggered epoll, recv/send
//	small uring LISTEN_PORT=BACKEND_PORT [...]   io_uring: one receive queued per socket
//	small probe                                  can io_uring run here? exit 0, or 3 and why
//
// Both ports are on 127.0.0.1. Built by the bench with `cc -O2`; no liburing,
// only the kernel's headers. Stopped with SIGTERM.
//
// The epoll mode is the model every event-loop proxy shares (HAProxy,
// nginx, tierlb): epoll_wait, then recv and send per ready socket. The
// uring mode queues a receive on every socket and a send when one
// completes, and submits everything queued while it waits for the next
// completions in a single io_uring_enter: the same work, without a system
// call per receive and per send.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "port.h"

#define BUF_SIZE (16 << 10)

// Kernel headers before 6.1 lack these; io_uring_setup refuses them there
// with EINVAL, and the plain ring is used.
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif

// side is one socket of a connection and what was read from it: buf[off:len]
// is still to be sent to the peer.
struct side {
	int fd;
	unsigned off, len;
	int eof;             // its end of stream was read
	int passed;          // epoll: ... and passed on, once buf was sent
	int readable;        // epoll: an edge said there is more to read
	int rdhup;           // epoll: the peer's FIN has come, behind what is queued
	struct side *peer;
	struct conn *c;
	char buf[BUF_SIZE];
};

struct conn {
	struct side s[2]; // client, backend
	int inflight;     // uring: operations queued on the two sockets
	int dead;         // closed (epoll) or failing (uring: released once inflight is 0)
	struct conn *next_free; // on the closed or the pool list
	struct sockaddr_in backend;
};

struct route {
	int listener;
	int backend_port;
};

static struct sockaddr_in loopback(int port) {
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static void nodelay(int fd) {
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// pool holds closed connections for the next ones. Handed back to malloc,
// a connection's 32 KiB at the top of the heap is trimmed and grown again
// with a brk every few connections; the pool is as large as the most
// connections open at once, and no larger.
static struct conn *pool;

static void release(struct conn *c) {
	c->next_free = pool;
	pool = c;
}

// new_conn sets up a connection's fields one by one: its buffers are
// written by the first receives, and zeroing them would cost more than the
// rest of the connection's set-up.
static struct conn *new_conn(int client, int backend, int backend_port) {
	struct conn *c = pool;
	if (c != NULL)
		pool = c->next_free;
	else if ((c = malloc(sizeof *c)) == NULL)
		return NULL;
	for (int k = 0; k < 2; k++) {
		struct side *s = &c->s[k];
		s->off = s->len = 0;
		s->eof = s->passed = s->readable = s->rdhup = 0;
		s->peer = &c->s[1 - k];
		s->c = c;
	}
	c->s[0].fd = client;
	c->s[1].fd = backend;
	c->inflight = c->dead = 0;
	c->next_free = NULL;
	c->backend = loopback(backend_port);
	return c;
}

// ---- epoll ----------------------------------------------------------------

// Connections are edge-triggered, as HAProxy's and tierlb's are: each
// socket is registered once for everything and never modified, and an edge
// is remembered in the side until a read finds the socket drained. A read
// shorter than the buffer drained it, so a small message costs one recv,
// with no second one to see EAGAIN.

static int ep;
static struct conn *closed; // released after the batch of events that closed them

// Tagged epoll data: a route's pointer has its low bit set.
#define ROUTE_TAG 1

static void ep_close(struct conn *c) {
	if (c->dead)
		return;
	c->dead = 1;
	close(c->s[0].fd); // also leaves the epoll set
	close(c->s[1].fd);
	c->next_free = closed;
	closed = c;
}

// ep_flush sends what src read to its peer; 0, or -1 when the connection
// is done for. What a full socket leaves waits for its EPOLLOUT edge.
static int ep_flush(struct side *src) {
	ssize_t n = send(src->peer->fd, src->buf + src->off, src->len - src->off, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	src->off += n;
	if (src->off == src->len)
		src->off = src->len = 0;
	return 0;
}

// ep_pump reads s while an edge says there is more and what it read last
// has been sent; 0, or -1 when the connection is done for.
static int ep_pump(struct side *s) {
	while (s->readable && !s->eof && s->len == 0) {
		ssize_t n = recv(s->fd, s->buf, BUF_SIZE, 0);
		if (n > 0) {
			s->len = n;
			if (n < BUF_SIZE) {
				s->readable = 0;
				// The FIN had come behind what this read drained: this
				// is the end, and no read is spent on finding it.
				s->eof = s->rdhup;
			}
			if (ep_flush(s) < 0)
				return -1;
		} else if (n == 0) {
			s->eof = 1;
			s->readable = 0;
		} else if (errno == EAGAIN) {
			s->readable = 0;
		} else if (errno != EINTR) {
			return -1;
		}
	}
	return 0;
}

static void ep_event(struct side *s, unsigned ev) {
	struct conn *c = s->c;
	if (c->dead)
		return; // closed earlier in this batch
	if (ev & EPOLLERR) {
		ep_close(c);
		return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
		s->readable = 1;
	if (ev & (EPOLLRDHUP | EPOLLHUP))
		s->rdhup = 1;
	// Room in s: send what the peer read, and once it is all sent the
	// peer may read again.
	if ((ev & EPOLLOUT) && s->peer->len > 0 && (ep_flush(s->peer) < 0 || ep_pump(s->peer) < 0)) {
		ep_close(c);
		return;
	}
	if (ep_pump(s) < 0) {
		ep_close(c);
		return;
	}
	// An end is passed on once what came before it is sent; when both
	// are, the closes pass the second one on.
	for (int k = 0; k < 2; k++) {
		struct side *x = &c->s[k];
		if (x->eof && x->len == 0 && !x->passed) {
			x->passed = 1;
			if (!x->peer->passed)
				shutdown(x->peer->fd, SHUT_WR);
		}
	}
	if (c->s[0].passed && c->s[1].passed)
		ep_close(c);
}

// ep_accept takes up to 16 connections per wakeup; the listener is
// level-triggered, so the next wait reports the rest.
static void ep_accept(struct route *r) {
	for (int i = 0; i < 16; i++) {
		int client = accept4(r->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (client < 0)
			return; // EAGAIN, or an error the next wakeup retries
		int backend = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct conn *c = backend < 0 ? NULL : new_conn(client, backend, r->backend_port);
		// A connect in progress is not waited for: a send before it is
		// done returns EAGAIN and waits for EPOLLOUT like any full socket,
		// and a refused one reports EPOLLERR.
		if (c == NULL || (connect(backend, (struct sockaddr *)&c->backend, sizeof c->backend) != 0 &&
		                  errno != EINPROGRESS)) {
			close(client);
			if (backend >= 0)
				close(backend);
			if (c != NULL)
				release(c);
			continue;
		}
		nodelay(backend); // the client has it from the listener
		for (int k = 0; k < 2; k++) {
			struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &c->s[k]};
			epoll_ctl(ep, EPOLL_CTL_ADD, c->s[k].fd, &ev);
		}
	}
}

static int run_epoll(struct route *routes, int n) {
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("small: epoll_create1");
		return 2;
	}
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uintptr_t)&routes[i] | ROUTE_TAG};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, routes[i].listener, &ev) != 0) {
			perror("small: epoll_ctl listener");
			return 2;
		}
	}
	struct epoll_event evs[256];
	for (;;) {
		int k = epoll_wait(ep, evs, 256, -1);
		if (k < 0 && errno != EINTR) {
			perror("small: epoll_wait");
			return 2;
		}
		for (int i = 0; i < k; i++) {
			if (evs[i].data.u64 & ROUTE_TAG)
				ep_accept((struct route *)(uintptr_t)(evs[i].data.u64 & ~(uint64_t)ROUTE_TAG));
			else
				ep_event(evs[i].data.ptr, evs[i].events);
		}
		while (closed != NULL) {
			struct conn *c = closed;
			closed = c->next_free;
			release(c);
		}
	}
}

// ---- io_uring, through the raw system calls ---------------------------------

struct ring {
	int fd;
	unsigned *sq_head, *sq_tail, *sq_mask, *sq_entries;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	unsigned tail; // ours: SQEs written up to here, published at submit
};

static struct ring ring;

// What a completion is for: the low bits of its user_data; the rest is the
// side's (or route's) pointer. 0 is a completion nobody waits for.
enum { OP_NONE, OP_ACCEPT, OP_RECV, OP_SEND, OP_CONNECT };
#define OP_MASK 7

static unsigned load_acquire(unsigned *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void store_release(unsigned *p, unsigned v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static int ring_setup_flags(unsigned entries, unsigned flags, const char **why) {
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = flags;
	int fd = syscall(__NR_io_uring_setup, entries, &p);
	if (fd < 0) {
		static char msg[96];
		snprintf(msg, sizeof msg, "io_uring_setup: %s%s", strerror(errno),
		         errno == EPERM ? " (kernel.io_uring_disabled, or a seccomp profile)" : "");
		*why = msg;
		return -1;
	}
	size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (cq_size > sq_size)
			sq_size = cq_size;
		cq_size = sq_size;
	}
	char *sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
	char *cq = sq;
	if (sq != MAP_FAILED && !(p.features & IORING_FEAT_SINGLE_MMAP))
		cq = mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
	void *sqes = MAP_FAILED;
	if (sq != MAP_FAILED && cq != MAP_FAILED)
		sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		            MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
	if (sqes == MAP_FAILED) {
		*why = "mmap of the rings failed";
		close(fd);
		return -1;
	}
	ring = (struct ring){
		.fd = fd,
		.sq_head = (unsigned *)(sq + p.sq_off.head),
		.sq_tail = (unsigned *)(sq + p.sq_off.tail),
		.sq_mask = (unsigned *)(sq + p.sq_off.ring_mask),
		.sq_entries = (unsigned *)(sq + p.sq_off.ring_entries),
		.cq_head = (unsigned *)(cq + p.cq_off.head),
		.cq_tail = (unsigned *)(cq + p.cq_off.tail),
		.cq_mask = (unsigned *)(cq + p.cq_off.ring_mask),
		.sqes = sqes,
		.cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes),
	};
	ring.tail = *ring.sq_tail;
	// The index array maps ring slots to SQEs one to one, once for all.
	unsigned *array = (unsigned *)(sq + p.sq_off.array);
	for (unsigned i = 0; i < p.sq_entries; i++)
		array[i] = i;
	return 0;
}

// ring_setup makes the ring with the flags that make a single thread's ring
// cheapest (completions are run when it asks for them, not by interrupting
// it), or with none on kernels before 6.1; then checks the operations it
// needs. It returns the flags' names, or NULL and why not in *why.
static const char *ring_setup(const char **why) {
	const char *mode = "SINGLE_ISSUER|DEFER_TASKRUN|COOP_TASKRUN";
	if (ring_setup_flags(4096, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN, why) != 0) {
		mode = "no flags";
		if (ring_setup_flags(4096, 0, why) != 0)
			return NULL;
	}
	struct io_uring_probe *probe = calloc(1, sizeof *probe + 256 * sizeof(struct io_uring_probe_op));
	if (probe == NULL || syscall(__NR_io_uring_register, ring.fd, IORING_REGISTER_PROBE, probe, 256) != 0) {
		*why = "IORING_REGISTER_PROBE failed (kernel before 5.6)";
		return NULL;
	}
	static const struct {
		int op;
		const char *name;
	} need[] = {{IORING_OP_ACCEPT, "ACCEPT"}, {IORING_OP_CONNECT, "CONNECT"}, {IORING_OP_RECV, "RECV"},
	            {IORING_OP_SEND, "SEND"}, {IORING_OP_CLOSE, "CLOSE"}};
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
		if (need[i].op > probe->last_op || !(probe->ops[need[i].op].flags & IO_URING_OP_SUPPORTED)) {
			static char msg[64];
			snprintf(msg, sizeof msg, "the kernel lacks IORING_OP_%s", need[i].name);
			*why = msg;
			return NULL;
		}
	}
	free(probe);
	return mode;
}

// ring_enter submits every SQE written and waits for at least wait
// completions.
static void ring_enter(unsigned wait) {
	store_release(ring.sq_tail, ring.tail);
	unsigned pending = ring.tail - load_acquire(ring.sq_head);
	int r = syscall(__NR_io_uring_enter, ring.fd, pending, wait, wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
	if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) {
		perror("small: io_uring_enter");
		exit(2);
	}
}

static struct io_uring_sqe *sqe(int op, int fd, uint64_t data) {
	if (ring.tail - load_acquire(ring.sq_head) >= *ring.sq_entries)
		ring_enter(0); // full: submit what is queued first
	struct io_uring_sqe *s = &ring.sqes[ring.tail & *ring.sq_mask];
	ring.tail++;
	memset(s, 0, sizeof *s);
	s->opcode = op;
	s->fd = fd;
	s->user_data = data;
	return s;
}

static void u_recv(struct side *s) {
	struct io_uring_sqe *q = sqe(IORING_OP_RECV, s->fd, (uintptr_t)s | OP_RECV);
	q->addr = (uintptr_t)s->buf;
	q->len = BUF_SIZE;
	s->c->inflight++;
}

static void u_send(struct side *src) {
	struct io_uring_sqe *q = sqe(IORING_OP_SEND, src->peer->fd, (uintptr_t)src | OP_SEND);
	q->addr = (uintptr_t)(src->buf + src->off);
	q->len = src->len - src->off;
	q->msg_flags = MSG_NOSIGNAL;
	src->c->inflight++;
}

static void u_accept(struct route *r) {
	struct io_uring_sqe *q = sqe(IORING_OP_ACCEPT, r->listener, (uintptr_t)r | OP_ACCEPT);
	q->accept_flags = SOCK_CLOEXEC;
}

// u_finish closes both sockets (queued, not a call of its own) once no
// operation refers to the connection any more.
static void u_finish(struct conn *c) {
	sqe(IORING_OP_CLOSE, c->s[0].fd, OP_NONE);
	sqe(IORING_OP_CLOSE, c->s[1].fd, OP_NONE);
	release(c);
}

// u_fail ends a connection at an error: shutting both sockets down
// completes what is still queued on them, and the last completion releases it.
static void u_fail(struct conn *c) {
	if (c->dead)
		return;
	c->dead = 1;
	if (c->inflight == 0) {
		u_finish(c);
		return;
	}
	shutdown(c->s[0].fd, SHUT_RDWR);
	shutdown(c->s[1].fd, SHUT_RDWR);
}

static void u_new(struct route *r, int client) {
	int backend = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct conn *c = backend < 0 ? NULL : new_conn(client, backend, r->backend_port);
	if (c == NULL) {
		close(client);
		if (backend >= 0)
			close(backend);
		return;
	}
	nodelay(backend); // the client has it from the listener
	// The client is read once the backend is there to send to.
	struct io_uring_sqe *q = sqe(IORING_OP_CONNECT, backend, (uintptr_t)&c->s[1] | OP_CONNECT);
	q->addr = (uintptr_t)&c->backend;
	q->off = sizeof c->backend;
	c->inflight++;
}

static void u_complete(uint64_t data, int res) {
	int op = data & OP_MASK;
	if (op == OP_NONE)
		return; // a close or a shutdown
	if (op == OP_ACCEPT) {
		struct route *r = (struct route *)(uintptr_t)(data & ~(uint64_t)OP_MASK);
		u_accept(r);
		if (res >= 0)
			u_new(r, res);
		else if (res != -EINTR && res != -ECONNABORTED && res != -EMFILE && res != -ENFILE && res != -ENOBUFS && res != -ENOMEM) {
			fprintf(stderr, "small: accept: %s\n", strerror(-res));
			exit(2);
		}
		return;
	}
	struct side *s = (struct side *)(uintptr_t)(data & ~(uint64_t)OP_MASK);
	struct conn *c = s->c;
	c->inflight--;
	if (c->dead) {
		if (c->inflight == 0)
			u_finish(c);
		return;
	}
	if (res < 0) {
		u_fail(c);
		return;
	}
	switch (op) {
	case OP_CONNECT:
		u_recv(&c->s[0]);
		u_recv(&c->s[1]);
		break;
	case OP_RECV:
		if (res == 0) {
			s->eof = 1;
			if (s->peer->eof) {
				u_finish(c); // both ends seen, nothing queued: the closes pass this one on
				break;
			}
			// Not IORING_OP_SHUTDOWN: the ring always hands it to a worker
			// thread, which looks the descriptor up only when it runs, after
			// the close queued behind it and maybe after an accept that
			// reused the number.
			shutdown(s->peer->fd, SHUT_WR);
			break;
		}
		s->off = 0;
		s->len = res;
		u_send(s);
		break;
	case OP_SEND:
		s->off += res;
		if (s->off < s->len) {
			u_send(s); // the rest, before anything more is read from s
			break;
		}
		s->off = s->len = 0;
		u_recv(s);
		break;
	}
}

static _Noreturn void run_uring(struct route *routes, int n) {
	for (int i = 0; i < n; i++)
		u_accept(&routes[i]);
	for (;;) {
		ring_enter(1);
		unsigned head = *ring.cq_head;
		while (head != load_acquire(ring.cq_tail)) {
			struct io_uring_cqe *e = &ring.cqes[head & *ring.cq_mask];
			uint64_t data = e->user_data;
			int res = e->res;
			store_release(ring.cq_head, ++head);
			u_complete(data, res);
		}
	}
}

// ---- main -------------------------------------------------------------------

static int usage(void) {
	fprintf(stderr, "usage: small epoll|uring LISTEN_PORT=BACKEND_PORT [...]\n       small probe\n");
	return 1;
}

int main(int argc, char **argv) {
	if (argc == 2 && strcmp(argv[1], "probe") == 0) {
		const char *why = NULL, *mode = ring_setup(&why);
		if (mode == NULL) {
			fprintf(stderr, "io_uring unavailable: %s\n", why);
			return 3;
		}
		printf("io_uring: %s\n", mode);
		return 0;
	}
	if (argc < 3)
		return usage();
	int uring = strcmp(argv[1], "uring") == 0;
	if (!uring && strcmp(argv[1], "epoll") != 0)
		return usage();
	// Both modes send with MSG_NOSIGNAL; this is for anything else.
	signal(SIGPIPE, SIG_IGN);
	if (uring) {
		const char *why = NULL, *mode = ring_setup(&why);
		if (mode == NULL) {
			fprintf(stderr, "small: io_uring unavailable: %s\n", why);
			return 3;
		}
		fprintf(stderr, "small: io_uring with %s\n", mode);
	}
	int n = argc - 2;
	struct route *routes = calloc(n, sizeof *routes);
	if (routes == NULL)
		return 2;
	for (int i = 0; i < n; i++) {
		const char *arg = argv[i + 2], *eq = strchr(arg, '=');
		int lport = eq ? port(arg, eq) : -1;
		int bport = eq ? port(eq + 1, eq + 1 + strlen(eq + 1)) : -1;
		if (lport < 0 || bport < 0) {
			fprintf(stderr, "small: %s: want LISTEN_PORT=BACKEND_PORT\n", arg);
			return 1;
		}
		// epoll's listeners never block; io_uring's accepts wait in the ring.
		int ln = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (uring ? 0 : SOCK_NONBLOCK), 0);
		int one = 1;
		struct sockaddr_in a = loopback(lport);
		// TCP_NODELAY on the listener is inherited by every accepted socket.
		if (ln < 0 || setsockopt(ln, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
		    setsockopt(ln, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
		    bind(ln, (struct sockaddr *)&a, sizeof a) != 0 || listen(ln, 1024) != 0) {
			fprintf(stderr, "small: listen on 127.0.0.1:%d: %s\n", lport, strerror(errno));
			return 2;
		}
		routes[i] = (struct route){ln, bport};
	}
	if (uring)
		run_uring(routes, n);
	return run_epoll(routes, n);
}
