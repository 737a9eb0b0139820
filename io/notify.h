/* Start-up and shutdown notices to the service manager (systemd's Type=notify, sd_notify(3)). */
#ifndef RR_IO_NOTIFY_H
#define RR_IO_NOTIFY_H

/* Sends state ("READY=1", "STOPPING=1", newline-separated assignments) as one datagram to the
 * AF_UNIX socket named by $NOTIFY_SOCKET: a path, or an abstract name written with a leading
 * '@'. Returns 0 when sent or when $NOTIFY_SOCKET is unset (not run by a service manager),
 * -errno otherwise (-EINVAL for a name that is neither). */
int notify_send(const char *state);

#endif
