/* listen/accept through the service: the accepted socket is a real fd passed by SCM_RIGHTS,
 * inherits the listener's options, and has the server role (TOKEN get fails: libquic's test). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/quic.h>

#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c)) {                                                              \
			fprintf(stderr, "FAIL %s:%d: %s (errno %d %s)\n", __FILE__,      \
				__LINE__, #c, errno, strerror(errno));                   \
			exit(1);                                                         \
		}                                                                        \
	} while (0)

int main(void)
{
	struct sockaddr_in sa, from;
	struct pollfd p;
	char buf[64];
	socklen_t len;
	int l, c, a, fl;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(5555);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	l = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(l >= 0);
	CHECK(setsockopt(l, SOL_QUIC, QUIC_SOCKOPT_ALPN, "smb", 3) == 0);
	CHECK(bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(l, 4) == 0);
	CHECK(setsockopt(l, SOL_QUIC, QUIC_SOCKOPT_ALPN, "h3", 2) == -1 && errno == EINVAL);
	fl = fcntl(l, F_GETFL);
	CHECK(fcntl(l, F_SETFL, fl | O_NONBLOCK) == 0);
	CHECK(accept(l, NULL, NULL) == -1 && errno == EAGAIN);

	c = socket(AF_INET, SOCK_DGRAM, IPPROTO_QUIC);
	CHECK(c >= 0);
	CHECK(connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0);

	p.fd = l;
	p.events = POLLIN;
	CHECK(poll(&p, 1, 2000) == 1 && (p.revents & POLLIN));
	len = sizeof(from);
	a = accept4(l, (struct sockaddr *)&from, &len, SOCK_NONBLOCK);
	CHECK(a >= 0 && len == sizeof(from) && from.sin_family == AF_INET);
	CHECK(fcntl(a, F_GETFL) & O_NONBLOCK);
	CHECK(!(fcntl(a, F_GETFD) & FD_CLOEXEC));
	CHECK(poll(&p, 1, 0) == 0);

	len = sizeof(buf);
	CHECK(getsockopt(a, SOL_QUIC, QUIC_SOCKOPT_TOKEN, buf, &len) == -1 && errno == EINVAL);
	len = sizeof(buf);
	CHECK(getsockopt(c, SOL_QUIC, QUIC_SOCKOPT_TOKEN, buf, &len) == 0);
	memset(buf, 0, sizeof(buf));
	len = sizeof(buf);
	CHECK(getsockopt(a, SOL_QUIC, QUIC_SOCKOPT_ALPN, buf, &len) == 0 && !strcmp(buf, "smb"));
	len = sizeof(from);
	CHECK(getsockname(a, (struct sockaddr *)&from, &len) == 0 && from.sin_port == htons(5555));

	/* the accepted socket works on its own */
	CHECK(send(a, "hi", 2, MSG_QUIC_STREAM_NEW | MSG_QUIC_STREAM_FIN) == 2);
	CHECK(recv(a, buf, sizeof(buf), 0) == 2 && !memcmp(buf, "hi", 2));

	CHECK(close(a) == 0 && close(c) == 0 && close(l) == 0);
	printf("OK\n");
	return 0;
}
