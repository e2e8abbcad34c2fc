/* Preloaded into Pinot 0.11's server by the native stack (src/stack/services.py).
 *
 * The server binds its query port (Netty's bind(port) in QueryServer) to the wildcard address
 * and has no setting for it. This turns a TCP bind to 0.0.0.0 or :: into one to 127.0.0.1 (as
 * ::ffff:127.0.0.1 on Java's dual-stack sockets). Binds to a given address are left alone, and
 * so is UDP: Pinot finds its host address by connecting a wildcard-bound datagram socket to a
 * public address, which loopback cannot reach.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static int is_tcp(int fd) {
    int type = 0;
    socklen_t size = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) == 0 && type == SOCK_STREAM;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    bind_fn real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr == NULL || !is_tcp(fd)) {
        return real_bind(fd, addr, len);
    }
    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in4;
        memcpy(&in4, addr, sizeof in4);
        if (in4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&in4, sizeof in4);
        }
    } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, addr, sizeof in6);
        if (IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr)) {
            static const unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                                     0, 0, 0xff, 0xff, 127, 0, 0, 1};
            memcpy(&in6.sin6_addr, mapped, sizeof mapped);
            return real_bind(fd, (const struct sockaddr *)&in6, sizeof in6);
        }
    }
    return real_bind(fd, addr, len);
}
