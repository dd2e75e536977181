/* libquic's GnuTLS API through the REAL service: sessions the application configures itself.
 * The client (child) sets up a GnuTLS PSK session and calls the blocking quic_handshake; the
 * server's accepted socket runs its own GnuTLS PSK session with the step API
 * (quic_handshake_init/step/deinit, the program doing each sendmsg/recvmsg). Both check the
 * ALPN chosen through quic_session_set_alpn/get_alpn, then a stream message is echoed.
 * Twice: the server enables tickets with the key getsockopt(SESSION_TICKET) gives an accepted
 * socket (as libquic does), the client takes the raw NewSessionTicket the socket kept with
 * quic_session_get_data and resumes the second connection with quic_session_set_data.
 * The second connection is 0-RTT, as a libquic application does it: both sessions have
 * GNUTLS_ENABLE_EARLY_DATA, the client sets the server's transport parameters it saved after
 * the first handshake (TRANSPORT_PARAM remote=1) and writes its request before
 * quic_handshake; the engine's EARLY secrets release it, and GnuTLS reports the early data as
 * accepted on both sides (GNUTLS_SFLAGS_EARLY_DATA). A third connection does the same with
 * the first ticket against a server without anti-replay, which GnuTLS makes refuse early
 * data: the handshake still completes and the request still arrives (resent in 1-RTT).
 * <netinet/quic.h> comes BEFORE <gnutls/gnutls.h> here: the harder order for its
 * gnutls_session_t typedef. Usage: sockd_gnutls_api PORT */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <netinet/quic.h>
#include <gnutls/gnutls.h>

#include "test_common.h"

static const unsigned char key_bytes[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

static int server_key(gnutls_session_t s, const char *user, gnutls_datum_t *key)
{
	(void)s;
	if (strcmp(user, "api-client"))
		return -1;
	key->data = gnutls_malloc(sizeof(key_bytes));
	if (!key->data)
		return -1;
	memcpy(key->data, key_bytes, sizeof(key_bytes));
	key->size = sizeof(key_bytes);
	return 0;
}

static void check_alpn(gnutls_session_t s)
{
	char alpn[16];
	size_t len = 2;

	CHECK(quic_session_get_alpn(s, alpn, &len) == -EINVAL); /* too small */
	len = sizeof(alpn);
	CHECK(quic_session_get_alpn(s, alpn, &len) == 0);
	CHECK(len == 6 && !memcmp(alpn, "sample", 6));
}

/* one message; a handshake message (the server's ticket, APP level) goes to GnuTLS */
static ssize_t recv_data(int fd, gnutls_session_t s, void *buf, size_t len, int64_t *sid,
			 uint32_t *sflags)
{
	struct quic_recv r;
	struct cmsghdr *c;
	ssize_t n;

	for (;;) {
		n = recv_with_cmsg(fd, buf, len, 0, &r);
		if (n < 0)
			return n;
		c = CMSG_FIRSTHDR(&r.m);
		if (c && c->cmsg_level == SOL_QUIC && c->cmsg_type == QUIC_HANDSHAKE_INFO) {
			CHECK(*(uint8_t *)CMSG_DATA(c) == QUIC_CRYPTO_APP);
			CHECK(gnutls_handshake_write(s, GNUTLS_ENCRYPTION_LEVEL_APPLICATION, buf,
						     n) == 0);
			continue;
		}
		CHECK(c && c->cmsg_type == QUIC_STREAM_INFO);
		*sid = ((struct quic_stream_info *)CMSG_DATA(c))->stream_id;
		*sflags = ((struct quic_stream_info *)CMSG_DATA(c))->stream_flags;
		return n;
	}
}

static unsigned char ticket_data[8192];
static size_t ticket_size;
/* the server's parameters of the first connection, what the client keeps for 0-RTT */
static struct quic_transport_param saved_param;
/* each round's request: the second one leaves as 0-RTT, accepted; the third one too, but
 * the server refuses it (no anti-replay), so it arrives after the handshake */
static const char *const request[3] = { "api", "early request", "refused early request" };
/* the client tells the server it is done with a connection: closing earlier could cut off
 * the echo (and the ticket) still on their way */
static int done_pipe[2];

static int client(const struct sockaddr_in *sa, int round)
{
	gnutls_datum_t key = { (unsigned char *)key_bytes, sizeof(key_bytes) };
	gnutls_psk_client_credentials_t cred;
	gnutls_session_t s;
	static char buf[65536];
	uint32_t sflags = 0;
	int64_t sid = -1;
	ssize_t n;
	socklen_t len;
	int fd, i;

	role = round ? "quic_handshake client (resuming)" : "quic_handshake client";
	fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(fd >= 0);
	CHECK(connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0);
	CHECK(gnutls_psk_allocate_client_credentials(&cred) == 0);
	CHECK(gnutls_psk_set_client_credentials(cred, "api-client", &key, GNUTLS_PSK_KEY_RAW) == 0);
	if (round) {
		/* 0-RTT needs the server's limits before its handshake answer; without them
		 * stream data can't be queued yet */
		CHECK(send_stream(fd, -1, MSG_QUIC_STREAM_NEW, "x", 1) < 0 && errno == ENOTCONN);
		CHECK(setsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_TRANSPORT_PARAM, &saved_param,
				 sizeof(saved_param)) == 0);
		CHECK(send_stream(fd, -1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN,
				  request[round],
				  strlen(request[round])) == (ssize_t)strlen(request[round]));
	}
	/* libquic's client flags */
	CHECK(gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_ENABLE_EARLY_DATA |
				       GNUTLS_NO_END_OF_EARLY_DATA) == 0);
	CHECK(gnutls_priority_set_direct(s, QUIC_PRIORITY, NULL) == 0);
	CHECK(gnutls_credentials_set(s, GNUTLS_CRD_PSK, cred) == 0);
	CHECK(quic_session_set_alpn(s, "sample", 6) == 0);
	gnutls_transport_set_int(s, fd);
	if (round)
		CHECK(quic_session_set_data(s, ticket_data, ticket_size) == 0);
	CHECK(quic_handshake(s) == 0);
	check_alpn(s);
	CHECK(!!gnutls_session_is_resumed(s) == !!round);
	/* the server took the early data (a first connection has none) */
	CHECK(!!(gnutls_session_get_flags(s) & GNUTLS_SFLAGS_EARLY_DATA) == (round == 1));

	if (!round) {
		CHECK(send_stream(fd, -1, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN, request[0],
				  3) == 3);
		saved_param.remote = 1;
		len = sizeof(saved_param);
		CHECK(getsockopt(fd, SOL_QUIC, QUIC_SOCKOPT_TRANSPORT_PARAM, &saved_param,
				 &len) == 0);
		CHECK(saved_param.remote == 1 && saved_param.max_data > 0 &&
		      saved_param.max_streams_bidi > 0);
	}
	n = recv_data(fd, s, buf, sizeof(buf), &sid, &sflags);
	CHECK(n == (ssize_t)strlen(request[round]) && !memcmp(buf, request[round], n) && sid == 0);
	if (!round) {
		/* the ticket follows the handshake: length 0 until it is in (bounded wait) */
		for (i = 0; i < 200; i++) {
			ticket_size = sizeof(ticket_data);
			CHECK(quic_session_get_data(s, ticket_data, &ticket_size) == 0);
			if (ticket_size)
				break;
			usleep(10000);
		}
		CHECK(ticket_size > 0);
	}
	CHECK(write(done_pipe[1], "d", 1) == 1);
	gnutls_deinit(s);
	gnutls_psk_free_client_credentials(cred);
	CHECK(close(fd) == 0);
	return 0;
}

/* GnuTLS accepts early data only with anti-replay on; a real server keeps the ClientHellos
 * it saw until they expire, this one sees each at most once anyway */
static int replay_add(void *db, time_t exp, const gnutls_datum_t *key, const gnutls_datum_t *data)
{
	(void)db;
	(void)exp;
	(void)key;
	(void)data;
	return 0;
}

/* the step API: the program performs each syscall itself */
static void step_handshake(int fd, gnutls_session_t s)
{
	struct quic_handshake_step *step = NULL, *bogus;
	ssize_t r;
	int i;

	CHECK(quic_handshake_init(s, &step) == 0);
	CHECK(step && step->op == QUIC_HANDSHAKE_STEP_OP_RECVMSG); /* servers listen first */
	bogus = step + 1;
	CHECK(quic_handshake_step(s, &bogus) == -EINVAL); /* not the step it handed out */
	for (i = 0; step && i < 1000; i++) {
		if (step->op == QUIC_HANDSHAKE_STEP_OP_RECVMSG) {
			r = recvmsg(fd, step->s_recvmsg.msg, step->s_recvmsg.flags);
			if (r < 0 && errno == EAGAIN) {
				struct pollfd p = { fd, POLLIN, 0 };

				CHECK(poll(&p, 1, 5000) == 1);
				continue;
			}
			step->s_recvmsg.retval = r < 0 ? -errno : r;
		} else {
			CHECK(step->op == QUIC_HANDSHAKE_STEP_OP_SENDMSG);
			r = sendmsg(fd, step->s_sendmsg.msg, step->s_sendmsg.flags);
			step->s_sendmsg.retval = r < 0 ? -errno : r;
		}
		CHECK(quic_handshake_step(s, &step) == 0);
	}
	CHECK(step == NULL);
	quic_handshake_deinit(s);
}

int main(int argc, char **argv)
{
	gnutls_psk_server_credentials_t cred;
	gnutls_session_t s;
	static char buf[65536];
	struct sockaddr_in sa, from;
	socklen_t len;
	uint32_t sflags = 0;
	int64_t sid = -1;
	int l, a, st;
	pid_t pid;
	ssize_t n;
	unsigned char tkey[64];
	socklen_t tlen;
	gnutls_datum_t tdat;
	int round;
	gnutls_anti_replay_t replay;

	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 2;
	}
	alarm(60); /* bounded: a hang fails the test instead of stalling CI */
	loopback_addr(&sa, atoi(argv[1]));

	role = "step server";
	l = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(l >= 0);
	CHECK(bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(l, 8) == 0);
	CHECK(pipe(done_pipe) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(l);
		exit(client(&sa, 0) || client(&sa, 1) || client(&sa, 2));
	}
	CHECK(gnutls_psk_allocate_server_credentials(&cred) == 0);
	gnutls_psk_set_server_credentials_function(cred, server_key);
	CHECK(gnutls_anti_replay_init(&replay) == 0);
	gnutls_anti_replay_set_add_function(replay, replay_add);
	for (round = 0; round < 3; round++) {
	len = sizeof(from);
	a = accept(l, (struct sockaddr *)&from, &len);
	CHECK(a >= 0);
	/* libquic's server flags: the engine sends the ticket itself once the handshake is done */
	CHECK(gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET |
				       GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA) == 0);
	CHECK(gnutls_priority_set_direct(s, QUIC_PRIORITY, NULL) == 0);
	CHECK(gnutls_credentials_set(s, GNUTLS_CRD_PSK, cred) == 0);
	CHECK(quic_session_set_alpn(s, "other, sample", 13) == 0);
	CHECK(quic_session_set_alpn(s, "a,b,c,d,e,f", 11) == -EINVAL); /* libquic's 5 names */
	gnutls_transport_set_int(s, a);
	/* libquic's server ticket key: the accepted socket's (derived from the peer address, so
	 * both connections get the same one) */
	tlen = sizeof(tkey);
	CHECK(getsockopt(a, SOL_QUIC, QUIC_SOCKOPT_SESSION_TICKET, tkey, &tlen) == 0);
	CHECK(tlen == sizeof(tkey));
	tdat.data = tkey;
	tdat.size = tlen;
	CHECK(gnutls_session_ticket_enable_server(s, &tdat) == 0);
	if (round == 1)
		gnutls_anti_replay_enable(s, replay);
	step_handshake(a, s);
	CHECK(!!gnutls_session_is_resumed(s) == !!round);
	CHECK(!!(gnutls_session_get_flags(s) & GNUTLS_SFLAGS_EARLY_DATA) == (round == 1));
	check_alpn(s);

	n = recv_data(a, s, buf, sizeof(buf), &sid, &sflags);
	CHECK(n == (ssize_t)strlen(request[round]) && !memcmp(buf, request[round], n) &&
	      (sflags & MSG_QUIC_STREAM_FIN));
	CHECK(send_stream(a, sid, MSG_QUIC_STREAM_FIN, buf, n) == n);
	CHECK(read(done_pipe[0], buf, 1) == 1);
	gnutls_deinit(s);
	if (round == 2)
		CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(close(a) == 0);
	}
	gnutls_psk_free_server_credentials(cred);
	gnutls_anti_replay_deinit(replay);
	CHECK(close(l) == 0);
	printf("OK\n");
	return 0;
}
