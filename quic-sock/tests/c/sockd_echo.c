/* Client/server echo through the REAL service (`quictun sockd`), kernel QUIC API only, plus
 * libquic's quic_{client,server}_handshake. The parent is the server, a forked child the client.
 * Covers: bind/listen/accept, connect, the handshake helpers with an X.509 cert, bidi and uni
 * streams, more streams than the initial stream limit, datagrams, the CONNECTION_CLOSE event
 * carrying the client's error code and phrase, errno cases.
 * Usage: sockd_echo KEY.pem CERT.pem PORT
 * (with -DKERNEL_API_ONLY the quic_* helpers resolve from the LD_PRELOADed library at run time) */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <netinet/quic.h>

#include "test_common.h"

#define NSTREAMS 150 /* beyond the default initial limit of 100 bidi streams */


/* read until a datagram arrives (skipping stream data) and check it */
static void wait_dgram(int fd, const char *want)
{
	char buf[256];
	struct quic_stream_info si;
	int mflags;
	ssize_t n;

	for (;;) {
		n = recv_any(fd, buf, sizeof(buf), &si, &mflags);
		CHECK(n >= 0);
		if (mflags & MSG_QUIC_DATAGRAM)
			break;
	}
	CHECK((size_t)n == strlen(want) && !memcmp(buf, want, n));
}

static int client(struct sockaddr_in *sa)
{
	static char buf[70000];
	struct quic_stream_info si;
	struct quic_connection_close cc;
	int fd, mflags, i, fins = 0, seen[NSTREAMS] = { 0 };
	ssize_t n;

	role = "client";
	fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(fd >= 0);
	enable_datagrams(fd);
	CHECK(connect(fd, (struct sockaddr *)sa, sizeof(*sa)) == 0);
	/* before the handshake: nothing can be sent */
	CHECK(send(fd, "x", 1, MSG_DONTWAIT) == -1 && errno == ENOTCONN);
	CHECK(quic_client_handshake(fd, NULL, "localhost", "sample") == 0);

	/* one bidi stream: echo with FIN */
	CHECK(send_stream_flags(fd, -1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN, "hello", 5, 0) == 5);
	n = recv_any(fd, buf, sizeof(buf), &si, &mflags);
	CHECK(n >= 0);
	if (n == 0 || !(si.stream_flags & MSG_QUIC_STREAM_FIN)) {
		/* data and FIN may come in two reads */
		ssize_t m = recv_any(fd, buf + n, sizeof(buf) - n, &si, &mflags);
		CHECK(m >= 0);
		n += m;
	}
	CHECK(n == 5 && !memcmp(buf, "hello", 5) && si.stream_id == 0 &&
	      (si.stream_flags & MSG_QUIC_STREAM_FIN));

	/* datagram echo */
	CHECK(send(fd, "dgram", 5, MSG_QUIC_DATAGRAM) == 5);
	n = recv_any(fd, buf, sizeof(buf), &si, &mflags);
	CHECK(n == 5 && (mflags & MSG_QUIC_DATAGRAM) && !memcmp(buf, "dgram", 5));

	/* unidirectional: the server answers on a stream of its own */
	CHECK(send_stream_flags(fd, -1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_UNI | MSG_QUIC_STREAM_FIN,
			  "uni", 3, 0) == 3);
	n = 0;
	do {
		ssize_t m = recv_any(fd, buf + n, sizeof(buf) - n, &si, &mflags);
		CHECK(m >= 0);
		n += m;
	} while (!(si.stream_flags & MSG_QUIC_STREAM_FIN));
	CHECK(n == 3 && !memcmp(buf, "uni", 3) && (si.stream_id & 3) == 3);

	/* many streams, all sent before reading: the 101st waits for MAX_STREAMS */
	for (i = 1; i <= NSTREAMS; i++) {
		char msg[16];
		int l = snprintf(msg, sizeof(msg), "s%d", i);

		CHECK(send_stream_flags(fd, -1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN, msg, l, 0) == l);
	}
	while (fins < NSTREAMS) {
		char want[16];
		int idx;

		n = recv_any(fd, buf, sizeof(buf), &si, &mflags);
		CHECK(n >= 0 && si.stream_id >= 4 && si.stream_id % 4 == 0);
		idx = (int)(si.stream_id / 4);
		CHECK(idx >= 1 && idx <= NSTREAMS);
		snprintf(want, sizeof(want), "s%d", idx);
		if (n > 0) {
			CHECK((size_t)n == strlen(want) && !memcmp(buf, want, n));
			seen[idx - 1]++;
		}
		if (si.stream_flags & MSG_QUIC_STREAM_FIN)
			fins++;
	}
	for (i = 0; i < NSTREAMS; i++)
		CHECK(seen[i] == 1);

	/* stream reset: the server reports RESET_STREAM's code back in a datagram */
	{
		struct quic_errinfo e = { 4 * (NSTREAMS + 1), 9 };

		CHECK(send_stream_flags(fd, -1, MSG_QUIC_STREAM_NEW, "rst", 3, 0) == 3);
		CHECK(setsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_STREAM_RESET, &e, sizeof(e)) == 0);
		wait_dgram(fd, "R9/3"); /* code 9, final size 3 ("rst") */
		/* a reset stream can't be written to */
		CHECK(send_stream_flags(fd, e.stream_id, 0, "x", 1, 0) == -1 && errno == EINVAL);
	}
	/* stop-sending: the server's next write on the stream fails, it reports the code */
	{
		struct quic_errinfo e = { 4 * (NSTREAMS + 2), 7 };

		CHECK(send_stream_flags(fd, -1, MSG_QUIC_STREAM_NEW, "stp", 3, 0) == 3);
		do {
			n = recv_any(fd, buf, sizeof(buf), &si, &mflags);
			CHECK(n >= 0);
		} while (si.stream_id != e.stream_id);
		CHECK(n == 3 && !memcmp(buf, "stp", 3));
		CHECK(setsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_STREAM_STOP_SENDING, &e, sizeof(e)) == 0);
		/* The service learns of STOP_SENDING when a write fails, so keep giving the server
		 * something to echo until its report arrives. "S7" with the code; 0 when the driver
		 * already dropped the stopped stream (README: deliberate differences). */
		for (i = 0;; i++) {
			struct pollfd p = { fd, POLLIN, 0 };

			CHECK(i < 100);
			CHECK(send_stream_flags(fd, e.stream_id, 0, "more", 4, 0) == 4);
			if (poll(&p, 1, 100) != 1)
				continue;
			n = recv_any(fd, buf, sizeof(buf), &si, &mflags);
			CHECK(n >= 0);
			if (mflags & MSG_QUIC_DATAGRAM) {
				CHECK(n >= 2 && buf[0] == 'S');
				break;
			}
		}
	}

	/* errno cases on an established socket */
	CHECK(send(fd, "x", 1, MSG_OOB) == -1 && errno == EINVAL);
	CHECK(listen(fd, 1) == -1 && errno == EINVAL);

	/* close with an application error code and phrase */
	memset(&cc, 0, sizeof(cc));
	cc.errcode = 42;
	strcpy((char *)cc.phrase, "bye");
	CHECK(setsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_CONNECTION_CLOSE, &cc, sizeof(cc)) == 0);
	CHECK(close(fd) == 0);
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[70000];
	struct sockaddr_in sa, from;
	struct quic_event_option ev = { QUIC_EVENT_CONNECTION_CLOSE, 1 };
	struct quic_event_option ev2 = { QUIC_EVENT_STREAM_UPDATE, 1 };
	struct quic_stream_info si;
	socklen_t len;
	static char ubuf[4096];
	ssize_t ulen = 0;
	int l, a, st, mflags, closed = 0;
	pid_t pid;
	ssize_t n;

	if (argc != 4) {
		fprintf(stderr, "usage: %s KEY CERT PORT\n", argv[0]);
		return 2;
	}
	alarm(30); /* bounded: a hang fails the test instead of stalling CI */
	loopback_addr(&sa, atoi(argv[3]));

	role = "server";
	l = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(l >= 0);
	CHECK(setsockopt(l, SOL_QUIC, QUIC_SOCKOPT_ALPN, "sample", 6) == 0);
	CHECK(setsockopt(l, SOL_QUIC, QUIC_SOCKOPT_EVENT, &ev, sizeof(ev)) == 0);
	CHECK(setsockopt(l, SOL_QUIC, QUIC_SOCKOPT_EVENT, &ev2, sizeof(ev2)) == 0);
	enable_datagrams(l);
	CHECK(bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(l, 8) == 0);

	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(l);
		exit(client(&sa));
	}

	len = sizeof(from);
	a = accept(l, (struct sockaddr *)&from, &len);
	CHECK(a >= 0 && from.sin_family == AF_INET);
	CHECK(quic_server_handshake(a, argv[1], argv[2], "sample") == 0);

	while (!closed) {
		n = recv_any(a, buf, sizeof(buf), &si, &mflags);
		CHECK(n >= 0);
		if ((mflags & MSG_QUIC_NOTIFICATION) && buf[0] == QUIC_EVENT_STREAM_UPDATE) {
			struct quic_stream_update *up = (void *)(buf + 1);
			char r[48];
			int rl;

			/* the other states (RECV, RECVD, ...) are covered by sockd_features.c */
			if (up->state != QUIC_STREAM_RECV_STATE_RESET_RECVD &&
			    up->state != QUIC_STREAM_SEND_STATE_RESET_SENT)
				continue;
			/* RESET_RECVD also reports the final size */
			if (up->state == QUIC_STREAM_RECV_STATE_RESET_RECVD)
				rl = snprintf(r, sizeof(r), "R%u/%llu", up->errcode,
					      (unsigned long long)up->finalsz);
			else
				rl = snprintf(r, sizeof(r), "S%u", up->errcode);
			CHECK(send(a, r, rl, MSG_QUIC_DATAGRAM) == rl);
		} else if (mflags & MSG_QUIC_NOTIFICATION) {
			struct quic_connection_close *cc = (void *)(buf + 1);

			CHECK(buf[0] == QUIC_EVENT_CONNECTION_CLOSE);
			CHECK(cc->errcode == 42 && !strcmp((char *)cc->phrase, "bye"));
			closed = 1;
		} else if (mflags & MSG_QUIC_DATAGRAM) {
			CHECK(send(a, buf, n, MSG_QUIC_DATAGRAM) == n);
		} else if (si.stream_id & 2) {
			/* data and FIN may arrive in separate reads: answer at the FIN */
			CHECK(ulen + n <= (ssize_t)sizeof(ubuf));
			memcpy(ubuf + ulen, buf, n);
			ulen += n;
			if (si.stream_flags & MSG_QUIC_STREAM_FIN) {
				CHECK(send_stream_flags(a, -1,
						  MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_UNI |
							  MSG_QUIC_STREAM_FIN,
						  ubuf, ulen, 0) == ulen);
				ulen = 0;
			}
		} else {
			uint32_t fin = si.stream_flags & MSG_QUIC_STREAM_FIN;
			ssize_t w = send_stream_flags(a, si.stream_id, fin, buf, n, 0);

			/* EINVAL: the client sent STOP_SENDING, the stream is reset (the event
			 * follows the first refusal) */
			CHECK(w == n || (w == -1 && errno == EINVAL));
		}
	}
	/* the connection is gone: nothing more to read */
	CHECK(recv(a, buf, sizeof(buf), MSG_DONTWAIT) == -1 && errno == ENOTCONN);
	CHECK(close(a) == 0 && close(l) == 0);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	printf("OK\n");
	return 0;
}
