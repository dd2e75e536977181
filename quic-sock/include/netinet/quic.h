/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * quictun's libquic-compatible header. Programs written for the Linux in-kernel QUIC API
 * include this and either link -lquic_sock (its socket/bind/.../close interpose libc's for
 * IPPROTO_QUIC sockets) or run unmodified under LD_PRELOAD=libquic_sock.so. The quicsock_*
 * entry points are the same calls under names that never clash with libc; every one of them
 * passes non-QUIC file descriptors straight to libc.
 */
#ifndef _QUICTUN_NETINET_QUIC_H
#define _QUICTUN_NETINET_QUIC_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/quic.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libquic helpers (built-in TLS in the service; returns 0 or a negative errno) */
int quic_client_handshake(int sockfd, const char *pkey_file, const char *hostname,
			  const char *alpns);
int quic_server_handshake(int sockfd, const char *pkey_file, const char *cert_file,
			  const char *alpns);
ssize_t quic_sendmsg(int sockfd, const void *msg, size_t len, int64_t sid, uint32_t flags);
ssize_t quic_recvmsg(int sockfd, void *msg, size_t len, int64_t *sid, uint32_t *flags);

/* The socket calls under non-clashing names (same semantics as the libc ones) */
int quicsock_socket(int domain, int type, int protocol);
int quicsock_bind(int fd, const struct sockaddr *addr, socklen_t len);
int quicsock_listen(int fd, int backlog);
int quicsock_accept(int fd, struct sockaddr *addr, socklen_t *len);
int quicsock_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int quicsock_connect(int fd, const struct sockaddr *addr, socklen_t len);
ssize_t quicsock_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t quicsock_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t quicsock_send(int fd, const void *buf, size_t len, int flags);
ssize_t quicsock_recv(int fd, void *buf, size_t len, int flags);
int quicsock_setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen);
int quicsock_getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen);
int quicsock_getsockname(int fd, struct sockaddr *addr, socklen_t *len);
int quicsock_getpeername(int fd, struct sockaddr *addr, socklen_t *len);
int quicsock_shutdown(int fd, int how);
int quicsock_close(int fd);
/* 1 if fd is a QUIC socket created through this library */
int quicsock_is_quic(int fd);

#ifdef __cplusplus
}
#endif

#endif /* _QUICTUN_NETINET_QUIC_H */
