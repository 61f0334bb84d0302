/*
 * sink: the smallest HTTP/1.1 server that can stand in for an MDM's
 * webhook endpoint in a benchmark: one thread, epoll, keep-alive and
 * pipelining, every request answered 202 with a short JSON body.
 *
 *   sink --listen 127.0.0.1:PORT [--dump FILE] [--status N] [--scep DIR]
 *
 * Listens on the given address only (use 127.0.0.1). --dump appends each
 * request body, one per line, to FILE (the benchmarks read the profiles
 * renewd pushed from it). --scep makes it an instant SCEP CA instead: it
 * answers GetCACaps with DIR/caps.txt, GetCACert with DIR/ca.der and every
 * PKIOperation with the CertRep DIR/certrep.der, so a benchmark can time
 * the proxy without a real CA's tens of milliseconds of noise. On
 * SIGTERM/SIGINT it prints "requests N" on stdout and exits 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_REQ (4 * 1024 * 1024) /* request head + body cap */

typedef struct conn {
	int fd;
	char *buf;
	size_t len, cap;
} conn;

static volatile sig_atomic_t stop;
static unsigned long long nreq, nconn;
static FILE *dump;
static int status = 202;

/* --scep: the canned answers, by operation */
typedef struct canned {
	const char *op, *ctype;
	char *body;
	size_t len;
} canned;
static canned scep_answers[] = {
	{"operation=GetCACaps", "text/plain", NULL, 0},
	{"operation=GetCACert", "application/x-x509-ca-cert", NULL, 0},
	{"operation=PKIOperation", "application/x-pki-message", NULL, 0},
};
static int scep_mode;

static int
load_file(const char *dir, const char *name, canned *c)
{
	char path[4096];
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) ||
	    (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) ||
	    (c->body = malloc((size_t)n)) == NULL ||
	    fread(c->body, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		if (f)
			fclose(f);
		return -1;
	}
	c->len = (size_t)n;
	fclose(f);
	return 0;
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
conn_free(int ep, conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->buf);
	free(c);
}

/* Content-Length of a request head, 0 when absent; -1 when malformed. */
static long
content_length(const char *head, size_t n)
{
	const char *p = head, *end = head + n, *eol;

	while (p < end) {
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			break;
		if ((size_t)(eol - p) > 15 &&
		    strncasecmp(p, "content-length:", 15) == 0)
			return strtol(p + 15, NULL, 10);
		p = eol + 2;
	}
	return 0;
}

static int
wants_close(const char *head, size_t n)
{
	return memmem(head, n, "\r\nConnection: close", 19) != NULL ||
	       memmem(head, n, "\r\nconnection: close", 19) != NULL;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			/* the peer is slow to read: wait (rare, tiny answers) */
			usleep(100);
			continue;
		}
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Answer every complete request in the buffer; -1 closes the connection. */
static int
serve(conn *c)
{
	static char out[256 * 64];
	static const char body[] = "{\"status\":\"queued\"}";
	char one[160];
	size_t off = 0, olen = 0;
	int close_after = 0, n1;

	n1 = snprintf(one, sizeof(one),
		      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		      "Content-Length: %zu\r\n\r\n%s",
		      status, status == 202 ? "Accepted" : "Status",
		      sizeof(body) - 1, body);
	for (;;) {
		char *hend = memmem(c->buf + off, c->len - off, "\r\n\r\n", 4);
		size_t hlen;
		long cl;

		if (hend == NULL)
			break;
		hlen = (size_t)(hend - (c->buf + off)) + 4;
		cl = content_length(c->buf + off, hlen);
		if (cl < 0 || cl > MAX_REQ)
			return -1;
		if (c->len - off < hlen + (size_t)cl)
			break;
		if (dump && cl > 0) {
			fwrite(c->buf + off + hlen, 1, (size_t)cl, dump);
			fputc('\n', dump);
			fflush(dump);
		}
		if (wants_close(c->buf + off, hlen))
			close_after = 1;
		nreq++;
		if (scep_mode) {
			/* one answer per request, the head and body in one
			 * write, as a CA that answers at once would */
			const char *eol = memchr(c->buf + off, '\n', hlen);
			const canned *a = NULL;
			size_t k, hn;
			char *r;

			for (k = 0; eol && k < 3; k++)
				if (memmem(c->buf + off, (size_t)(eol -
					   (c->buf + off)), scep_answers[k].op,
					   strlen(scep_answers[k].op)))
					a = &scep_answers[k];
			if (a == NULL || (olen && write_all(c->fd, out, olen)))
				return -1;
			olen = 0;
			hn = (size_t)snprintf(one, sizeof(one),
					      "HTTP/1.1 200 OK\r\nContent-Type: "
					      "%s\r\nContent-Length: %zu\r\n\r\n",
					      a->ctype, a->len);
			if ((r = malloc(hn + a->len)) == NULL)
				return -1;
			memcpy(r, one, hn);
			memcpy(r + hn, a->body, a->len);
			k = (size_t)write_all(c->fd, r, hn + a->len);
			free(r);
			if (k)
				return -1;
			off += hlen + (size_t)cl;
			if (close_after)
				break;
			continue;
		}
		if (olen + (size_t)n1 > sizeof(out)) {
			if (write_all(c->fd, out, olen))
				return -1;
			olen = 0;
		}
		memcpy(out + olen, one, (size_t)n1);
		olen += (size_t)n1;
		off += hlen + (size_t)cl;
		if (close_after)
			break;
	}
	if (olen && write_all(c->fd, out, olen))
		return -1;
	if (close_after)
		return -1;
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa;
	struct epoll_event ev, evs[256];
	const char *listen_at = NULL, *dump_path = NULL;
	char host[64];
	int lfd, ep, one = 1, i, port;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
			listen_at = argv[++i];
		else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
			dump_path = argv[++i];
		else if (strcmp(argv[i], "--status") == 0 && i + 1 < argc)
			status = atoi(argv[++i]);
		else if (strcmp(argv[i], "--scep") == 0 && i + 1 < argc) {
			const char *dir = argv[++i];
			if (load_file(dir, "caps.txt", &scep_answers[0]) ||
			    load_file(dir, "ca.der", &scep_answers[1]) ||
			    load_file(dir, "certrep.der", &scep_answers[2]))
				return 1;
			scep_mode = 1;
		} else {
			fprintf(stderr, "usage: sink --listen 127.0.0.1:PORT "
				"[--dump FILE] [--status N] [--scep DIR]\n");
			return 2;
		}
	}
	if (listen_at == NULL ||
	    sscanf(listen_at, "%63[^:]:%d", host, &port) != 2) {
		fprintf(stderr, "sink: --listen ADDR:PORT is required\n");
		return 2;
	}
	if (dump_path && (dump = fopen(dump_path, "a")) == NULL) {
		perror(dump_path);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "sink: bad address '%s'\n", host);
		return 2;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, 1024)) {
		perror("sink: bind");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	fprintf(stderr, "sink: listening on %s\n", listen_at);
	while (!stop) {
		int n = epoll_wait(ep, evs, 256, 200);

		for (i = 0; i < n; i++) {
			conn *c = evs[i].data.ptr;

			if (c == NULL) {
				int fd;
				while ((fd = accept4(lfd, NULL, NULL,
						     SOCK_NONBLOCK)) >= 0) {
					conn *nc = calloc(1, sizeof(*nc));
					nconn++;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
						   &one, sizeof(one));
					nc->fd = fd;
					ev.events = EPOLLIN;
					ev.data.ptr = nc;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			for (;;) {
				ssize_t r;
				if (c->cap - c->len < 65536) {
					size_t nc = c->cap ? c->cap * 2 : 131072;
					if (nc > MAX_REQ * 2) {
						r = -1;
						goto gone;
					}
					c->buf = realloc(c->buf, nc);
					c->cap = nc;
				}
				r = read(c->fd, c->buf + c->len, c->cap - c->len);
				if (r < 0 && errno == EINTR)
					continue;
				if (r < 0 && errno == EAGAIN)
					break;
			gone:
				if (r <= 0) {
					conn_free(ep, c);
					c = NULL;
					break;
				}
				c->len += (size_t)r;
				if (serve(c)) {
					conn_free(ep, c);
					c = NULL;
					break;
				}
			}
		}
	}
	if (dump)
		fclose(dump);
	printf("requests %llu\nconnections %llu\n", nreq, nconn);
	return 0;
}
