/* sm-replay: feeds commands to one state machine and writes its raw RESP replies, so that a
 * script can compare them byte for byte with redis-server's (tools/redis-compare.py).
 *
 * Input (stdin), repeated: a line "@<time_ms>\r\n", then one command as a RESP array of bulk
 * strings. A write (CMD_WRITE, and FLUSHDB) is encoded as a log entry stamped with time_ms
 * and applied; a read (CMD_READ) is served by sm_read with time_ms as the reading node's
 * clock; XGROUP HELP and XINFO HELP are answered as the node answers them; any other node
 * command gets an error. "@@<time_ms>" instead of "@<time_ms>" first applies a no-op entry
 * stamped time_ms (as a leader's empty entry would): the state machine's clock, which reads
 * measure idle times with, is then time_ms. Output (stdout): each reply, in order, nothing
 * else. Exits 0 at the end of the input, 1 on malformed input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/errors.h"
#include "io/service/cgroup_cmd.h"
#include "io/service/cmd.h"
#include "io/service/reply.h"
#include "io/service/sm.h"

#define REPLAY_ARGS_MAX  4096u
#define REPLAY_ARG_MAX   (1u << 20)
#define REPLAY_LINE_MAX  64u
#define REPLAY_REPLY_MAX ((size_t)64 << 20)

static bool read_line(char *buf, size_t cap)
{
    if (fgets(buf, (int)cap, stdin) == NULL) {
        return false;
    }
    size_t n = strlen(buf);
    if (n < 2 || buf[n - 1] != '\n' || buf[n - 2] != '\r') {
        return false;
    }
    buf[n - 2] = '\0';
    return true;
}

/* One RESP array of bulk strings into argv/argl (malloc'd, the caller frees them). */
static bool read_command(uint32_t *argc, uint8_t **argv, uint32_t *argl)
{
    char line[REPLAY_LINE_MAX];
    if (!read_line(line, sizeof(line)) || line[0] != '*') {
        return false;
    }
    long n = strtol(line + 1, NULL, 10);
    if (n < 1 || n > (long)REPLAY_ARGS_MAX) {
        return false;
    }
    *argc = (uint32_t)n;
    for (uint32_t i = 0; i < *argc; i++) {
        if (!read_line(line, sizeof(line)) || line[0] != '$') {
            return false;
        }
        long len = strtol(line + 1, NULL, 10);
        if (len < 0 || len > (long)REPLAY_ARG_MAX) {
            return false;
        }
        argl[i] = (uint32_t)len;
        argv[i] = malloc((size_t)len + 2);
        if (argv[i] == NULL || fread(argv[i], 1, (size_t)len + 2, stdin) != (size_t)len + 2) {
            return false;
        }
    }
    return true;
}

static int run(struct sm *sm,
               uint32_t argc,
               uint8_t **argv,
               uint32_t *argl,
               int64_t time_ms,
               raft_index index,
               struct reply *r)
{
    const uint8_t *const *cargv = (const uint8_t *const *)argv;
    const struct cmd_spec *c = cmd_resolve(argc, cargv, argl, r);
    if (c == NULL) {
        return 0;
    }
    if (c->cls == CMD_READ) {
        sm_read(sm, time_ms, argc, cargv, argl, r);
        return 0;
    }
    if (c->id == CMD_ID_XGROUP_HELP || c->id == CMD_ID_XINFO_HELP) {
        cg_cmd_help(c->id, r);
        return 0;
    }
    if (c->cls != CMD_WRITE && c->id != CMD_ID_FLUSHDB && c->id != CMD_ID_FLUSHALL) {
        reply_error(r, "ERR sm-replay: node commands are not replayed");
        return 0;
    }
    /* FLUSHALL is the node's: it proposes ["flushdb"] to every group. */
    static const uint8_t flushdb[] = "flushdb";
    static const uint8_t *const flush_argv[1] = {flushdb};
    static uint32_t flush_argl[1] = {7};
    if (c->id == CMD_ID_FLUSHALL) {
        cargv = flush_argv;
        argl = flush_argl;
        argc = 1;
    }
    struct sm_entry_header h = {.client_id = 0, .seq = 0, .first_unacked = 0, .time_ms = time_ms};
    size_t size = sm_entry_size(argc, argl);
    uint8_t *entry = malloc(size);
    if (entry == NULL) {
        return RR_ENOMEM;
    }
    sm_entry_encode(&h, argc, cargv, argl, entry, size);
    int rc = sm_apply(sm, index, entry, size, r);
    free(entry);
    return rc;
}

int main(void)
{
    struct sm *sm;
    if (sm_create(&sm, NULL, NULL) != 0) {
        return 1;
    }
    static uint8_t *argv[REPLAY_ARGS_MAX];
    static uint32_t argl[REPLAY_ARGS_MAX];
    struct reply r;
    reply_init(&r, REPLAY_REPLY_MAX);
    raft_index index = 0;
    char line[REPLAY_LINE_MAX];
    int status = 0;
    while (read_line(line, sizeof(line))) {
        uint32_t argc = 0;
        if (line[0] != '@' || !read_command(&argc, argv, argl)) {
            status = 1;
            break;
        }
        bool noop = line[1] == '@';
        int64_t time_ms = strtoll(line + (noop ? 2 : 1), NULL, 10);
        reply_reset(&r);
        if (noop) {
            uint8_t entry[SM_ENTRY_NOOP_BYTES];
            size_t n = sm_entry_encode_noop(time_ms, entry, sizeof(entry));
            if (n != SM_ENTRY_NOOP_BYTES || sm_apply(sm, ++index, entry, n, &r) != 0) {
                status = 1;
                break;
            }
        }
        if (run(sm, argc, argv, argl, time_ms, ++index, &r) != 0 || r.overflow) {
            status = 1;
            break;
        }
        fwrite(r.buf, 1, r.len, stdout);
        fflush(stdout);
        for (uint32_t i = 0; i < argc; i++) {
            free(argv[i]);
        }
    }
    reply_free(&r);
    sm_destroy(sm);
    return status;
}
