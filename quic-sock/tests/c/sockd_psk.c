/* PSK handshakes through the REAL service, with nothing but the kernel header and libquic's
 * API: quic_client_handshake(fd, PSKFILE, ...) and quic_server_handshake(fd, PSKFILE, NULL, ...)
 * run TLS 1.3 PSK with GnuTLS inside the library (loaded at run time), over the external-TLS
 * socket calls. The client (child) and the server's accepted socket echo a stream message and
 * a datagram. Then a client with the wrong key fails on both sides with a negative return and
 * no hang, and a malformed PSK file is refused before anything is sent.
 * Exit 77 (skip) when libgnutls.so.30 is not installed.
 * Usage: sockd_psk DIR PORT   (DIR: where the PSK files are written) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <netinet/quic.h>

#include "test_common.h"

static char good[512], wrong[512], bad[512];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int client(const struct sockaddr_in *sa)
{
	static char buf[65536];
	struct quic_stream_info si;
	int fd, mflags, got_stream = 0, got_dgram = 0, i;
	ssize_t n;

	role = "psk client";
	fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(fd >= 0);
	enable_datagrams(fd);
	CHECK(connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0);
	CHECK(quic_client_handshake(fd, good, "localhost", "sample") == 0);
	CHECK(send_stream(fd, -1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN, "over psk", 8) == 8);
	for (i = 0; (!got_stream || !got_dgram) && i < 100; i++) {
		/* strict: a handshake message after the handshake would be a bug (no tickets with PSK) */
		n = recv_msg_info(fd, buf, sizeof(buf), &si, &mflags, 0, 1);
		CHECK(n >= 0);
		if (mflags & MSG_QUIC_NOTIFICATION)
			continue;
		if (mflags & MSG_QUIC_DATAGRAM) {
			CHECK(got_stream && n == 9 && !memcmp(buf, "psk dgram", 9));
			got_dgram = 1;
		} else if (n > 0) {
			CHECK(n == 8 && !memcmp(buf, "over psk", 8));
			got_stream = 1;
			/* Only now: the service's server drops 1-RTT packets that arrive before its
			 * application installed the 1-RTT read key (the kernel buffers them), and a
			 * datagram is never retransmitted. The echo proves the server is ready. */
			CHECK(send(fd, "psk dgram", 9, MSG_QUIC_DATAGRAM) == 9);
		}
	}
	CHECK(got_stream && got_dgram);
	CHECK(close(fd) == 0);
	return 0;
}

/* a client that must fail: wrong key (or, first, a malformed file: EINVAL, nothing sent) */
static int wrong_client(const struct sockaddr_in *sa)
{
	double t;
	int fd, r;

	role = "wrong-key client";
	fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(fd >= 0);
	CHECK(connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0);
	CHECK(quic_client_handshake(fd, bad, "localhost", "sample") == -EINVAL);
	CHECK(quic_client_handshake(fd, "/nonexistent/psk", "localhost", "sample") == -ENOENT);
	t = now();
	r = quic_client_handshake(fd, wrong, "localhost", "sample");
	fprintf(stderr, "wrong-key client: handshake returned %d after %.2f s\n", r, now() - t);
	CHECK(r < 0);
	CHECK(close(fd) == 0);
	return 0;
}

static int listener(struct sockaddr_in *sa)
{
	int l;

	l = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(l >= 0);
	CHECK(setsockopt(l, SOL_QUIC, QUIC_SOCKOPT_ALPN, "sample", 6) == 0);
	enable_datagrams(l);
	CHECK(bind(l, (struct sockaddr *)sa, sizeof(*sa)) == 0);
	CHECK(listen(l, 8) == 0);
	return l;
}

static pid_t spawn(int l, int (*fn)(const struct sockaddr_in *), const struct sockaddr_in *sa)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		close(l);
		exit(fn(sa));
	}
	return pid;
}

static void reap(pid_t pid)
{
	int st;

	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(int argc, char **argv)
{
	static char buf[65536];
	struct quic_stream_info si;
	struct sockaddr_in sa, from;
	socklen_t len;
	int l, a, r, done = 0, mflags;
	void *gnutls;
	double t;
	pid_t pid;
	ssize_t n;

	if (argc != 3) {
		fprintf(stderr, "usage: %s DIR PORT\n", argv[0]);
		return 2;
	}
	gnutls = dlopen("libgnutls.so.30", RTLD_NOW);
	if (!gnutls) {
		printf("SKIP: libgnutls.so.30 not installed\n");
		return 77;
	}
	dlclose(gnutls);
	alarm(60); /* bounded: a hang fails the test instead of stalling CI */
	snprintf(good, sizeof(good), "%s/good.psk", argv[1]);
	snprintf(wrong, sizeof(wrong), "%s/wrong.psk", argv[1]);
	snprintf(bad, sizeof(bad), "%s/bad.psk", argv[1]);
	/* the server knows two identities; the client offers the first line of its file */
	write_file(good, "client1:8f4c2a19d07e63b5a1c9e0f2d4b6a8c01e3f5a7b9c0d2e4f6a8b0c2d4e6f8091\n"
			 "other:00112233445566778899aabbccddeeff\n");
	write_file(wrong, "client1:0f4c2a19d07e63b5a1c9e0f2d4b6a8c01e3f5a7b9c0d2e4f6a8b0c2d4e6f8091\n");
	write_file(bad, "client1 8f4c2a19\n");

	loopback_addr(&sa, atoi(argv[2]));

	/* round 1: PSK client and PSK server (accepted socket) echo a stream and a datagram */
	role = "psk server";
	l = listener(&sa);
	pid = spawn(l, client, &sa);
	len = sizeof(from);
	a = accept(l, (struct sockaddr *)&from, &len);
	CHECK(a >= 0);
	CHECK(quic_server_handshake(a, good, NULL, "sample") == 0);
	while (done < 2) {
		n = recv_msg_info(a, buf, sizeof(buf), &si, &mflags, 0, 1);
		CHECK(n >= 0);
		if (mflags & MSG_QUIC_NOTIFICATION)
			continue;
		if (mflags & MSG_QUIC_DATAGRAM) {
			CHECK(send(a, buf, n, MSG_QUIC_DATAGRAM) == n);
			done++;
		} else {
			CHECK(si.stream_id >= 0);
			CHECK(send_stream(a, si.stream_id, si.stream_flags & MSG_QUIC_STREAM_FIN, buf,
					  n) == n);
			if (si.stream_flags & MSG_QUIC_STREAM_FIN)
				done++;
		}
	}
	reap(pid);
	CHECK(close(a) == 0);

	/* round 2: the wrong key fails on both sides, promptly */
	role = "psk server (wrong key)";
	pid = spawn(l, wrong_client, &sa);
	len = sizeof(from);
	a = accept(l, (struct sockaddr *)&from, &len);
	CHECK(a >= 0);
	t = now();
	r = quic_server_handshake(a, good, NULL, "sample");
	fprintf(stderr, "server: wrong-key handshake returned %d after %.2f s\n", r, now() - t);
	CHECK(r < 0);
	CHECK(close(a) == 0); /* CONNECTION_CLOSE: the client's handshake ends too */
	reap(pid);
	CHECK(close(l) == 0);
	printf("OK\n");
	return 0;
}
