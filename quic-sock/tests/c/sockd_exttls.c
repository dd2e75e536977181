/* External TLS through the REAL service: the client runs TLS 1.3 itself with GnuTLS's QUIC
 * hooks, the way libquic drives the kernel (reference §1.9): ClientHello's extension 0x39 from
 * getsockopt(TRANSPORT_PARAM_EXT), handshake messages via sendmsg/recvmsg with a
 * QUIC_HANDSHAKE_INFO cmsg, traffic secrets via setsockopt(CRYPTO_SECRET), the server's 0x39 via
 * setsockopt(TRANSPORT_PARAM_EXT). The server (parent) uses the built-in quic_server_handshake,
 * so both wire formats meet. Then a stream and a datagram are echoed.
 * Second round, the other way: a plain listener (as in the kernel, no option: accepted sockets
 * decide their TLS after accept()); the accepted socket runs the GnuTLS server, the client
 * (child) the built-in quic_client_handshake.
 * Usage: sockd_exttls KEY.pem CERT.pem PORT */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <gnutls/gnutls.h>
#include <netinet/quic.h>

#include "test_common.h"

static int sock = -1;
static int app_tx, app_rx;

static uint8_t quic_level(gnutls_record_encryption_level_t l)
{
	switch (l) {
	case GNUTLS_ENCRYPTION_LEVEL_INITIAL:
		return QUIC_CRYPTO_INITIAL;
	case GNUTLS_ENCRYPTION_LEVEL_HANDSHAKE:
		return QUIC_CRYPTO_HANDSHAKE;
	case GNUTLS_ENCRYPTION_LEVEL_APPLICATION:
		return QUIC_CRYPTO_APP;
	default:
		return QUIC_CRYPTO_EARLY;
	}
}

static gnutls_record_encryption_level_t tls_level(uint8_t l)
{
	switch (l) {
	case QUIC_CRYPTO_INITIAL:
		return GNUTLS_ENCRYPTION_LEVEL_INITIAL;
	case QUIC_CRYPTO_HANDSHAKE:
		return GNUTLS_ENCRYPTION_LEVEL_HANDSHAKE;
	default:
		return GNUTLS_ENCRYPTION_LEVEL_APPLICATION;
	}
}

static ssize_t send_handshake(uint8_t level, const void *data, size_t len)
{
	struct quic_handshake_info hi = { level };

	return send_with_cmsg(sock, QUIC_HANDSHAKE_INFO, &hi, sizeof(hi), data, len, 0);
}

/* one message; *level is -1 unless it carried QUIC_HANDSHAKE_INFO */
static ssize_t recv_msg(void *buf, size_t len, int *level, int *mflags, int flags)
{
	struct quic_recv r;
	struct cmsghdr *c;
	ssize_t n;

	n = recv_with_cmsg(sock, buf, len, flags, &r);
	*level = -1;
	if (n < 0)
		return n;
	*mflags = r.m.msg_flags;
	for (c = CMSG_FIRSTHDR(&r.m); c; c = CMSG_NXTHDR(&r.m, c))
		if (c->cmsg_level == SOL_QUIC && c->cmsg_type == QUIC_HANDSHAKE_INFO)
			*level = *(uint8_t *)CMSG_DATA(c);
	return n;
}

/* GnuTLS hands over handshake bytes to send */
static int on_handshake_out(gnutls_session_t s, gnutls_record_encryption_level_t level,
			    gnutls_handshake_description_t htype, const void *data, size_t len)
{
	(void)s;
	(void)htype;
	CHECK(send_handshake(quic_level(level), data, len) == (ssize_t)len);
	return 0;
}

static int install(gnutls_session_t s, uint8_t level, int send, const void *secret, size_t len)
{
	struct quic_crypto_secret cs;

	memset(&cs, 0, sizeof(cs));
	cs.send = send;
	cs.level = level;
	switch (gnutls_cipher_get(s)) {
	case GNUTLS_CIPHER_AES_128_GCM:
		cs.type = TLS_CIPHER_AES_GCM_128;
		break;
	case GNUTLS_CIPHER_AES_256_GCM:
		cs.type = TLS_CIPHER_AES_GCM_256;
		break;
	case GNUTLS_CIPHER_CHACHA20_POLY1305:
		cs.type = TLS_CIPHER_CHACHA20_POLY1305;
		break;
	default:
		CHECK(!"unexpected cipher");
	}
	CHECK(len <= sizeof(cs.secret));
	memcpy(cs.secret, secret, len);
	CHECK(setsockopt(sock, SOL_QUIC, QUIC_SOCKOPT_CRYPTO_SECRET, &cs, sizeof(cs)) == 0);
	if (level == QUIC_CRYPTO_APP)
		*(send ? &app_tx : &app_rx) = 1;
	return 0;
}

static int on_secret(gnutls_session_t s, gnutls_record_encryption_level_t level,
		     const void *rx, const void *tx, size_t len)
{
	uint8_t l = quic_level(level);

	if (l == QUIC_CRYPTO_EARLY)
		return 0; /* no 0-RTT here */
	if (tx)
		install(s, l, 1, tx, len);
	if (rx)
		install(s, l, 0, rx, len);
	return 0;
}

/* extension 0x39: ours from the socket, the peer's to the socket */
static int tp_send(gnutls_session_t s, gnutls_buffer_t out)
{
	uint8_t buf[512];
	socklen_t len = sizeof(buf);

	(void)s;
	CHECK(getsockopt(sock, SOL_QUIC, QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, buf, &len) == 0);
	CHECK(len > 0);
	return gnutls_buffer_append_data(out, buf, len) == 0 ? (int)len : -1;
}

static int tp_recv(gnutls_session_t s, const unsigned char *data, size_t len)
{
	(void)s;
	CHECK(setsockopt(sock, SOL_QUIC, QUIC_SOCKOPT_TRANSPORT_PARAM_EXT, data, len) == 0);
	return 0;
}

static ssize_t no_transport(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	(void)p;
	(void)buf;
	(void)len;
	errno = EAGAIN;
	return -1;
}

/* drive GnuTLS until its handshake completes, moving bytes through the socket `sock` */
static void run_handshake(gnutls_session_t s)
{
	static char buf[65536];
	int level, mflags, r, i;
	ssize_t n;

	r = gnutls_handshake(s); /* a client's ClientHello goes out through on_handshake_out */
	CHECK(r == GNUTLS_E_AGAIN || r == 0);
	for (i = 0; r != 0 && i < 100; i++) {
		struct pollfd p = { sock, POLLIN, 0 };

		CHECK(poll(&p, 1, 5000) == 1);
		n = recv_msg(buf, sizeof(buf), &level, &mflags, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			continue;
		CHECK(n > 0 && level >= 0); /* handshake messages carry QUIC_HANDSHAKE_INFO */
		CHECK(gnutls_handshake_write(s, tls_level(level), buf, n) == 0);
		r = gnutls_handshake(s);
		CHECK(r == 0 || r == GNUTLS_E_AGAIN);
	}
	CHECK(r == 0 && app_tx && app_rx);
}

/* the common GnuTLS QUIC setup of both sides */
static void setup_tls(gnutls_session_t s, gnutls_certificate_credentials_t cred)
{
	gnutls_datum_t alpn = { (unsigned char *)"sample", 6 };

	CHECK(gnutls_priority_set_direct(s,
					 "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE:"
					 "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305",
					 NULL) == 0);
	CHECK(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred) == 0);
	CHECK(gnutls_alpn_set_protocols(s, &alpn, 1, GNUTLS_ALPN_MANDATORY) == 0);
	gnutls_handshake_set_secret_function(s, on_secret);
	gnutls_handshake_set_read_function(s, on_handshake_out);
	gnutls_transport_set_pull_function(s, no_transport);
	CHECK(gnutls_session_ext_register(s, "quic_transport_parameters", 0x39, GNUTLS_EXT_TLS,
					  tp_recv, tp_send, NULL, NULL, NULL,
					  GNUTLS_EXT_FLAG_TLS | GNUTLS_EXT_FLAG_CLIENT_HELLO |
						  GNUTLS_EXT_FLAG_EE) == 0);
}

static int client(struct sockaddr_in *sa)
{
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	static char buf[65536];
	struct quic_crypto_secret late;
	int level, mflags, got_stream = 0, got_dgram = 0, i;
	ssize_t n;

	role = "client";
	sock = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(sock >= 0);
	enable_datagrams(sock);
	CHECK(connect(sock, (struct sockaddr *)sa, sizeof(*sa)) == 0);

	CHECK(gnutls_certificate_allocate_credentials(&cred) == 0);
	CHECK(gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA) == 0);
	setup_tls(s, cred);
	CHECK(gnutls_server_name_set(s, GNUTLS_NAME_DNS, "localhost", 9) == 0);

	/* no stream data before ESTABLISHED */
	CHECK(send(sock, "x", 1, MSG_DONTWAIT) == -1 && errno == ENOTCONN);
	run_handshake(s);
	/* ESTABLISHED: secrets are refused now */
	memset(&late, 0, sizeof(late));
	late.send = 1;
	late.level = QUIC_CRYPTO_HANDSHAKE;
	late.type = TLS_CIPHER_AES_GCM_128;
	CHECK(setsockopt(sock, SOL_QUIC, QUIC_SOCKOPT_CRYPTO_SECRET, &late, sizeof(late)) == -1 &&
	      errno == EINVAL);

	CHECK(quic_sendmsg(sock, "over gnutls", 11, -1,
			   MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN) == 11);
	CHECK(send(sock, "dgram", 5, MSG_QUIC_DATAGRAM) == 5);
	for (i = 0; (!got_stream || !got_dgram) && i < 100; i++) {
		n = recv_msg(buf, sizeof(buf), &level, &mflags, 0);
		CHECK(n >= 0);
		/* as in the kernel, the server's NewSessionTicket is no recvmsg handshake message */
		CHECK(level < 0);
		if (mflags & MSG_QUIC_DATAGRAM) {
			CHECK(n == 5 && !memcmp(buf, "dgram", 5));
			got_dgram = 1;
		} else if (!(mflags & MSG_QUIC_NOTIFICATION)) {
			CHECK(n == 11 && !memcmp(buf, "over gnutls", 11));
			got_stream = 1;
		}
	}
	CHECK(got_stream && got_dgram);
	/* ...but the raw message getsockopt(SESSION_TICKET) returns (length 0 until it came) */
	for (i = 0; i < 200; i++) {
		socklen_t tl = sizeof(buf);

		CHECK(getsockopt(sock, SOL_QUIC, QUIC_SOCKOPT_SESSION_TICKET, buf, &tl) == 0);
		n = tl;
		if (n > 0)
			break;
		usleep(10000);
	}
	CHECK(n > 4 && (unsigned char)buf[0] == 4); /* TLS NewSessionTicket */
	CHECK(gnutls_handshake_write(s, GNUTLS_ENCRYPTION_LEVEL_APPLICATION, buf, n) == 0);
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cred);
	CHECK(close(sock) == 0);
	return 0;
}

/* child of round 2: a built-in client that sends a stream message and a datagram and expects
 * them echoed */
static int builtin_client(struct sockaddr_in *sa)
{
	static char buf[65536];
	int got_stream = 0, got_dgram = 0, i;
	uint32_t flags;
	ssize_t n;

	role = "builtin client";
	sock = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(sock >= 0);
	enable_datagrams(sock);
	CHECK(connect(sock, (struct sockaddr *)sa, sizeof(*sa)) == 0);
	CHECK(quic_client_handshake(sock, NULL, "localhost", "sample") == 0);
	CHECK(quic_sendmsg(sock, "to gnutls", 9, -1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN) ==
	      9);
	CHECK(send(sock, "dgram2", 6, MSG_QUIC_DATAGRAM) == 6);
	for (i = 0; (!got_stream || !got_dgram) && i < 100; i++) {
		int64_t sid = 0;

		flags = 0;
		n = quic_recvmsg(sock, buf, sizeof(buf), &sid, &flags);
		CHECK(n >= 0);
		if (flags & MSG_QUIC_NOTIFICATION)
			continue;
		if (flags & MSG_QUIC_DATAGRAM) {
			CHECK(n == 6 && !memcmp(buf, "dgram2", 6));
			got_dgram = 1;
		} else {
			CHECK(n == 9 && !memcmp(buf, "to gnutls", 9));
			got_stream = 1;
		}
	}
	CHECK(got_stream && got_dgram);
	CHECK(close(sock) == 0);
	return 0;
}

/* round 2: the accepted socket's application runs the server TLS with GnuTLS */
static void external_server(const char *key, const char *cert)
{
	static char buf[65536];
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	struct sockaddr_in sa, from;
	socklen_t len;
	int l, a, st, done = 0, level, mflags;
	pid_t pid;
	ssize_t n;

	role = "external server";
	app_tx = app_rx = 0;
	loopback_addr(&sa, 0);
	l = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(l >= 0);
	enable_datagrams(l);
	CHECK(bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	len = sizeof(sa);
	CHECK(getsockname(l, (struct sockaddr *)&sa, &len) == 0);
	CHECK(listen(l, 8) == 0);

	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(l);
		exit(builtin_client(&sa));
	}
	len = sizeof(from);
	a = accept(l, (struct sockaddr *)&from, &len);
	CHECK(a >= 0);
	sock = a;
	CHECK(gnutls_certificate_allocate_credentials(&cred) == 0);
	CHECK(gnutls_certificate_set_x509_key_file(cred, cert, key, GNUTLS_X509_FMT_PEM) == 0);
	CHECK(gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NO_END_OF_EARLY_DATA | GNUTLS_NO_TICKETS) ==
	      0);
	setup_tls(s, cred);
	run_handshake(s);
	/* echo one stream message and one datagram */
	while (done < 2) {
		struct quic_stream_info si;
		struct quic_recv r;
		struct cmsghdr *c;

		n = recv_with_cmsg(a, buf, sizeof(buf), 0, &r);
		CHECK(n >= 0);
		mflags = r.m.msg_flags;
		level = -1;
		memset(&si, 0, sizeof(si));
		for (c = CMSG_FIRSTHDR(&r.m); c; c = CMSG_NXTHDR(&r.m, c)) {
			if (c->cmsg_level != SOL_QUIC)
				continue;
			if (c->cmsg_type == QUIC_HANDSHAKE_INFO)
				level = *(uint8_t *)CMSG_DATA(c);
			if (c->cmsg_type == QUIC_STREAM_INFO)
				memcpy(&si, CMSG_DATA(c), sizeof(si));
		}
		if (level >= 0 || (mflags & MSG_QUIC_NOTIFICATION))
			continue;
		if (mflags & MSG_QUIC_DATAGRAM) {
			CHECK(send(a, buf, n, MSG_QUIC_DATAGRAM) == n);
			done++;
		} else {
			CHECK(quic_sendmsg(a, buf, n, si.stream_id,
					   si.stream_flags & MSG_QUIC_STREAM_FIN) == n);
			if (si.stream_flags & MSG_QUIC_STREAM_FIN)
				done++;
		}
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cred);
	CHECK(close(a) == 0 && close(l) == 0);
}

int main(int argc, char **argv)
{
	static char buf[65536];
	struct sockaddr_in sa, from;
	socklen_t len;
	int l, a, st, done = 0;
	uint32_t flags;
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
	CHECK(a >= 0);
	CHECK(quic_server_handshake(a, argv[1], argv[2], "sample") == 0);
	/* echo one stream message and one datagram */
	while (done < 2) {
		int64_t sid = 0;

		flags = 0;
		n = quic_recvmsg(a, buf, sizeof(buf), &sid, &flags);
		CHECK(n >= 0);
		if (flags & MSG_QUIC_NOTIFICATION)
			continue;
		if (flags & MSG_QUIC_DATAGRAM) {
			CHECK(send(a, buf, n, MSG_QUIC_DATAGRAM) == n);
			done++;
		} else {
			CHECK(quic_sendmsg(a, buf, n, sid, flags & MSG_QUIC_STREAM_FIN) == n);
			if (flags & MSG_QUIC_STREAM_FIN)
				done++;
		}
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(close(a) == 0 && close(l) == 0);
	external_server(argv[1], argv[2]);
	printf("OK\n");
	return 0;
}
