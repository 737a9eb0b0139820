/* Peer address resolution off the loops (docs/node.md "The kernel seam"). An IPv4 literal
 * is parsed at once (kernel_resolve_numeric: never blocks); a host name goes to the node's
 * resolver thread, which calls kernel_resolve_name (getaddrinfo: it reads /etc/hosts and may
 * ask a DNS server, for seconds) while the loops go on. A worker posts a request (its id, the
 * peer's id, a generation, host, port) and collects the answers on its tick; it discards an answer
 * whose generation is no longer the peer's (removed, re-added or readdressed meanwhile). The thread
 * is not loop code; a deterministic simulator replaces this file along with io/kernel.c (it answers
 * a request on its own schedule instead). */
#ifndef RR_IO_RESOLVER_H
#define RR_IO_RESOLVER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

/* Requests posted and not yet collected, all workers together: a post past it fails and the
 * peer retries after its backoff. A worker has at most one current request per peer
 * (RAFT_MEMBERS_MAX), plus stale ones of peers readdressed while a lookup ran. */
#define RESOLVE_QUEUE_MAX 256
#define RESOLVE_HOST_MAX  64 /* NODE_HOST_MAX */
#define RESOLVE_ERROR_MAX 96

struct resolver;

/* One answer, for the worker that asked. */
struct resolve_result {
    uint32_t peer;                 /* the peer id of the request */
    uint64_t gen;                  /* the generation of the request */
    bool ok;                       /* addr holds the address; else error says why */
    struct sockaddr_in addr;       /* host:port, IPv4 */
    char error[RESOLVE_ERROR_MAX]; /* gai_strerror's text when !ok */
};

/* Whether res is the answer a peer waits for: it still waits (`waiting`: a lookup is with
 * the resolver; a removal clears it) and res answers its current generation `gen` (a new one
 * is given at every add, re-add or change of address, and at every new lookup). */
bool resolve_answer_current(const struct resolve_result *res, bool waiting, uint64_t gen);

/* Starts the resolver thread for `workers` workers (start-up, blocking). delay_ms: the
 * fault-test build's test-resolve-delay-ms (the thread waits that long before each lookup);
 * 0 elsewhere. NULL (logged) if the thread cannot start. */
struct resolver *resolver_start(uint32_t workers, uint32_t delay_ms);
/* Stops the thread and joins it (shutdown, after the workers): a lookup in progress is
 * waited for (getaddrinfo cannot be interrupted; the resolver's own timeouts bound it), a
 * test delay is cut short; requests not started and answers not collected are dropped. */
void resolver_stop(struct resolver *r);
/* Queues a lookup of host:port for worker's peer (a mutex, no system call). 0, or -1 when
 * RESOLVE_QUEUE_MAX requests are outstanding. */
int resolver_post(struct resolver *r,
                  uint32_t worker,
                  uint32_t peer,
                  uint64_t gen,
                  const char *host,
                  uint16_t port);
/* Moves up to cap of worker's answers into out, oldest first; returns how many. Without an
 * answer for worker it reads one atomic and takes no lock. */
uint32_t
resolver_collect(struct resolver *r, uint32_t worker, struct resolve_result *out, uint32_t cap);

#endif
