/* The nodes ringraft-bench talks to, and with --cluster the map from key slot to node:
 * fetched with CLUSTER SLOTS (a blocking call, on the main thread only), published to the
 * event loops, corrected by them from -MOVED replies. */
#ifndef RB_SLOTS_H
#define RB_SLOTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bench/rbench/rbench.h"

struct rb_node {
    char host[RB_HOST_MAX];       /* as given or as CLUSTER SLOTS / -MOVED named it */
    uint16_t port;                /* client port */
    struct sockaddr_storage addr; /* resolved once, when added */
    socklen_t addr_len;
};

/* Append-only: the main thread adds nodes, then publishes the count (release); the event
 * loops read node[i] for i < count (acquire). */
struct rb_nodes {
    struct rb_node node[RB_NODES_MAX];
    uint32_t count; /* read and written with __atomic builtins */
};

struct rb_slot_map {
    uint8_t node[RB_SLOTS]; /* index into rb_nodes, or RB_NODE_NONE */
};

#define RB_WANTED_MAX 8 /* nodes named by -MOVED awaiting the main thread */

struct rb_cluster {
    struct rb_nodes nodes;
    pthread_mutex_t lock;            /* guards map and wanted */
    struct rb_slot_map map;          /* the latest CLUSTER SLOTS answer */
    uint64_t gen;                    /* bumped (under lock, and atomically) for each new map */
    bool refresh_wanted;             /* set by a loop that saw -MOVED; __atomic */
    uint32_t refreshes;              /* CLUSTER SLOTS fetched (main thread) */
    char auth[RB_PASSWORD_MAX + 64]; /* -a: AUTH request sent before CLUSTER SLOTS */
    uint32_t auth_len;               /* 0: none */
    uint32_t wanted_count;           /* entries in wanted */
    struct {
        char host[RB_HOST_MAX];
        uint16_t port;
    } wanted[RB_WANTED_MAX]; /* -MOVED targets not in nodes yet */
};

void cluster_init(struct rb_cluster *c);
void cluster_destroy(struct rb_cluster *c);

/* Main thread only. Adds host:port (resolving host, which may block) unless present; returns
 * its index, or -1 with the reason in err (table full, unknown host). */
int nodes_add(struct rb_nodes *n, const char *host, uint16_t port, char *err, size_t err_size);
/* Any thread: index of host:port, or -1. */
int nodes_find(const struct rb_nodes *n, const char *host, size_t host_len, uint16_t port);
uint32_t nodes_count(const struct rb_nodes *n);
/* Parses "host:port,host:port" (IPv6 as [addr]:port) and adds each; 0, or 1 with err. */
int nodes_add_list(struct rb_nodes *n, const char *list, char *err, size_t err_size);

/* Main thread. CLUSTER SLOTS from node `via` (blocking, bounded by timeout_ms); on success the
 * map is published to the loops (cluster->gen bumped) and new nodes are added. 0, or 1 with
 * the reason in err (connection failure, error reply, nothing usable in the reply). */
int cluster_refresh(struct rb_cluster *c, uint32_t via, int timeout_ms, char *err, size_t err_size);
/* Event loop: asks the main thread to add host:port (named by a -MOVED; dropped when the
 * list is full, the next -MOVED asks again). Main thread: adds the nodes asked for. */
void cluster_want_node(struct rb_cluster *c, const char *host, size_t host_len, uint16_t port);
void cluster_add_wanted(struct rb_cluster *c);
/* Event loop: copies the published map into *local if it is newer than *gen. */
void cluster_adopt(struct rb_cluster *c, struct rb_slot_map *local, uint64_t *gen);

/* Parses "MOVED <slot> <host>:<port>" (an error reply's text). */
bool slots_parse_moved(const char *text,
                       size_t len,
                       uint16_t *slot,
                       char *host,
                       size_t host_cap,
                       size_t *host_len,
                       uint16_t *port);
/* Redis Cluster key slot of key (io/service/cmd.c's cmd_keyslot). */
uint16_t slots_keyslot(const char *key, size_t len);

#endif
