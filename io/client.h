/* A client connection (RESP2): requests parsed in order, answered in order. */
#ifndef RR_IO_CLIENT_H
#define RR_IO_CLIENT_H

#include "io/node.h"

struct client {
    struct conn *conn; /* NULL once closed */
    struct worker *w;
    uint64_t id;  /* CLIENT ID; also the session id of its writes */
    uint64_t seq; /* last write sequence number handed out */
    struct resp_parser parser;
    struct req *head, *tail;  /* in flight, in request order */
    struct req *oldest_write; /* the first write in that list: its seq is first_unacked */
    uint32_t inflight;
    bool paused;        /* stopped reading: pipeline or output limit */
    bool quit;          /* QUIT: close once the replies before it are out */
    bool authenticated; /* requirepass is empty, or AUTH / HELLO AUTH succeeded */
    bool resume_queued;
    struct client *resume_next;
    char name[64];
    char addr[64]; /* "ip:port" of the client (SLOWLOG) */
    int64_t created_ms;
    uint64_t commands;
};

/* The client's output was sent: it may read again if it paused for output room. */
void client_on_sent(struct conn *c);

/* Parses the input of clients that were paused and may go on (called outside drains:
 * parsing may propose). */
void client_resume_pending(struct worker *w);

/* Node commands (commands.c): everything CMD_NODE except the fan-outs. Writes the reply
 * into r. Returns false if the client should be closed after the reply (QUIT). */
bool node_command(struct client *cl,
                  const struct cmd_spec *cmd,
                  uint32_t argc,
                  const uint8_t *const argv[],
                  const size_t argl[],
                  struct reply *r);

#endif
