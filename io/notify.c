/* The notify protocol is small enough to speak without libsystemd: one datagram, no reply.
 * ringraftd sends "READY=1" once every worker has recovered its WAL and listens, so
 * `systemctl start` returns when the node accepts clients and peers (and fails if start-up
 * fails), and "STOPPING=1" when a shutdown begins. */
#include "io/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (name == NULL || name[0] == '\0') {
        return 0;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t name_len = strlen(name);
    if ((name[0] != '/' && name[0] != '@') || name_len >= sizeof(addr.sun_path)) {
        return -EINVAL;
    }
    memcpy(addr.sun_path, name, name_len);
    if (name[0] == '@') {
        addr.sun_path[0] = '\0'; /* Linux abstract namespace */
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + name_len);
    ssize_t sent =
        sendto(fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&addr, addr_len);
    int rc = sent < 0 ? -errno : 0;
    close(fd);
    return rc;
}
