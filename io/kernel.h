/* The kernel seam: every contact of the node's loops with the kernel — the ring's submission
 * and completion, the clocks, sockets, files, the process — goes through the functions below
 * and nothing else in io/ or storage/ makes one (tools/check-seam.sh checks it; start-up
 * and shutdown code is listed there by name). A deterministic simulator replaces io/kernel.c
 * as a whole to run the real node code on a simulated ring, disk and network. Filling an
 * SQE (io_uring_prep_*) or the provided-buffer ring only writes memory and is not a contact.
 * docs/node.md "The kernel seam". */
#ifndef RR_IO_KERNEL_H
#define RR_IO_KERNEL_H

#include <liburing.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/wal.h"

/* ---- the ring ---- */

/* A free SQE of ring, or NULL when its SQ is full. */
struct io_uring_sqe *kernel_get_sqe(struct io_uring *ring);
/* Free SQ slots of ring. */
unsigned kernel_sq_space_left(struct io_uring *ring);
/* Hands the SQEs queued on ring to the kernel; io_uring_submit's result. */
int kernel_submit(struct io_uring *ring);
/* Submits what is queued and waits up to wait_ms for one completion; with wait_ms 0 only
 * collects the completions the kernel has (the deferred task work runs too). A negative
 * errno, -ETIME when the wait ran out, or a count. */
int kernel_submit_and_wait(struct io_uring *ring, int64_t wait_ms);
/* Waits up to wait_ms for one completion without submitting anything. */
void kernel_wait(struct io_uring *ring, int64_t wait_ms);
/* Runs fn on every completion ring holds, in order, then releases them; returns how many. */
unsigned kernel_reap(struct io_uring *ring,
                     void (*fn)(void *arg, const struct io_uring_cqe *cqe),
                     void *arg);
/* Start-up probes of features the opcode probe cannot see (each a flag of an opcode that
 * older kernels refuse with -EINVAL at its first completion). Blocking, on a ring with
 * nothing else in flight, before its loop starts. Each submits one request (user data
 * `request`) and, to end it, a cancel (`cancel`); if a completion does not come within 5 s
 * the probe gives up and what is still due arrives later with that user data, for the loop
 * to ignore. 1: supported, 0: refused, or a negative errno when the probe could not run. */
/* Multishot accept, on a listening Unix socket in the abstract namespace. */
int kernel_probe_multishot_accept(struct io_uring *ring, uint64_t request, uint64_t cancel);
/* Multishot recv with buffers of the registered provided-buffer ring buf_group, on a
 * socketpair; a buffer it fills is handed to give_back (which returns it to the ring). */
int kernel_probe_multishot_recv(struct io_uring *ring,
                                uint64_t request,
                                uint64_t cancel,
                                uint16_t buf_group,
                                void (*give_back)(void *arg, unsigned short bid),
                                void *arg);
/* True when ring holds completions not reaped yet (or some overflowed). */
bool kernel_cq_pending(struct io_uring *ring);
/* The WAL's seam (storage/wal.h) on ring: the functions above and the monotonic clock. */
struct wal_kernel kernel_wal(struct io_uring *ring);

/* ---- the clocks ---- */

int64_t node_clock_ms(void); /* monotonic: ticks and deadlines */
int64_t node_clock_ns(void); /* monotonic, for durations */
int64_t node_wall_ms(void);  /* the wall clock: entry timestamps, SLOWLOG, log lines */

/* ---- sockets ---- */

/* A non-blocking TCP socket with TCP_NODELAY set, for a dial (the connect goes on the
 * ring); a negative errno. */
int kernel_dial_socket(void);
/* The IPv4 address of host:port (blocking: a name that is not an address asks the
 * system's resolver); 0 or -1 (logged). Start-up only (the listening sockets): the loops
 * use the two below. */
int kernel_resolve(const char *host, uint16_t port, struct sockaddr_in *out);
/* host:port into out when host is an IPv4 literal (getaddrinfo with AI_NUMERICHOST: no
 * lookup, never blocks: a loop may call it); -1 when it is not one (a name). Logs nothing. */
int kernel_resolve_numeric(const char *host, uint16_t port, struct sockaddr_in *out);
/* The IPv4 address of host:port by getaddrinfo (blocking: /etc/hosts, DNS). 0, or -1 with
 * gai_strerror's text in err. Only the resolver thread (io/resolver.h) calls it. */
int kernel_resolve_name(
    const char *host, uint16_t port, struct sockaddr_in *out, char *err, size_t errcap);

/* The peer of the connected socket fd as "ip:port" into addr, and whether it is a loopback
 * one (127.0.0.0/8, ::1, or IPv4-mapped loopback): protected mode accepts only these. */
bool kernel_peer_address(int fd, char *addr, size_t cap);

/* ---- files ---- */

/* Closes fd; a negative errno. */
int kernel_close(int fd);
/* Replaces dir/name with text atomically and durably (blocking): a temporary file, fsync,
 * rename, fsync of the directory. 0 or -1 (logged). */
int kernel_replace_file(const char *dir, const char *name, const char *text, size_t len);
/* The process's resident set from statm_fd (/proc/self/statm, opened at start) in bytes;
 * 0 if unknown. */
uint64_t kernel_resident_bytes(int statm_fd);
/* Writes one log line to fd (a failed log write has nowhere to be reported). */
void kernel_log_write(int fd, const char *line, size_t len);

/* ---- the process ---- */

/* The process id (INFO, peer handshake nonces). */
uint32_t kernel_pid(void);
/* Asks the main thread to stop the process (SIGTERM, which its sigwait takes). */
void kernel_stop_process(void);

#endif
