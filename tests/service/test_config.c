/* Tests of ringraftd's table of settings (io/config.c, included here for its table): every
 * row, set to a value other than its default, survives config_write and config_load_file
 * unchanged (alone, and all rows at once); the built-in default does too, with the
 * fault-test switches written only when set; and the sample config ringraftd writes, the
 * checked-in one (tools/dist/ringraft.conf) and ringraftd(8) (tools/man/ringraftd.8) name
 * every row, so a setting added to the table without them fails here.
 *
 * The checked-in files are read relative to the working directory: the top of the tree, as
 * `make test-service` runs the tests. */
/* io/config.c first: cmocka.h defines a macro fail(), and config.c a function of that name. */
/* clang-format off */
#include "io/config.c"

/* cmocka.h needs these four first, in this order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SAMPLE_PATH "tools/dist/ringraft.conf"
#define MAN_PATH    "tools/man/ringraftd.8"
#define TEXT_MAX    (256u * 1024u)

/* A value for each CUSTOM row (the typed rows get one from their kind and range). A CUSTOM
 * row added to the table needs a line here: the test names it otherwise. */
static const char *const custom_values[][2] = {
    {"nodes", "1=10.0.0.1:7001,2=node-2.example:7002@17102,3=10.0.0.3:7003"},
    {"port", "7100"},
    {"loglevel", "debug"},
    {"disk-batching", "linger:250"},
    {"net-batching", "none"},
    {"wal-sync", "fdatasync"},
    {"wal-prepare", "fallocate"},
    {"slowlog-log-slower-than", "-1"},
    {"unsafe-test-mode", "reads-without-readindex"},
    {"wal-segment-bytes", "1052672"},
};

static void on_assert(const char *file, int line, const char *expr)
{
    fail_msg("RR_ASSERT failed at %s:%d: %s", file, line, expr);
}

static int setup(void **state)
{
    (void)state;
    rr_assert_set_handler(on_assert);
    return 0;
}

/* An integer other than d in [lo, hi]: d + 1024 when it fits (a size then prints with a
 * k suffix or plain, never as d did), else d - 1024, d + 1 or d - 1. */
static uint64_t other_integer(uint64_t d, uint64_t lo, uint64_t hi)
{
    if (hi >= 1024 && d <= hi - 1024) {
        return d + 1024;
    }
    if (d >= lo + 1024) {
        return d - 1024;
    }
    return d < hi ? d + 1 : d - 1;
}

/* A value for row o that config_set accepts and that differs from the default. */
static void other_value(const struct config_option *o, char *buf, size_t len)
{
    struct node_config def;
    config_default(&def);
    const char *field = (const char *)&def + o->offset;
    uint64_t d = 0;
    uint32_t d32 = 0;
    uint16_t d16 = 0;
    bool b = false;
    switch (o->kind) {
    case CONFIG_U16:
        memcpy(&d16, field, sizeof(d16));
        snprintf(buf, len, "%" PRIu64, other_integer(d16, o->lo, o->hi));
        return;
    case CONFIG_U32:
        memcpy(&d32, field, sizeof(d32));
        snprintf(buf, len, "%" PRIu64, other_integer(d32, o->lo, o->hi));
        return;
    case CONFIG_U64:
    case CONFIG_HEX64:
    case CONFIG_BYTES:
        memcpy(&d, field, sizeof(d));
        snprintf(buf, len, "%" PRIu64, other_integer(d, o->lo, o->hi));
        return;
    case CONFIG_BOOL:
        memcpy(&b, field, sizeof(b));
        snprintf(buf, len, "%s", b ? "no" : "yes");
        return;
    case CONFIG_STR:
        /* White space: the writer must quote it for the reader to take it back whole. */
        snprintf(buf, len, "%.8s with spaces", o->name);
        return;
    case CONFIG_CUSTOM:
        for (size_t i = 0; i < sizeof(custom_values) / sizeof(custom_values[0]); i++) {
            if (strcmp(custom_values[i][0], o->name) == 0) {
                snprintf(buf, len, "%s", custom_values[i][1]);
                return;
            }
        }
        fail_msg("setting %s: add a value for it to custom_values[] in %s", o->name, __FILE__);
    }
}

/* c written by config_write into a string (malloc'ed) and, when path is not NULL, a file. */
static char *write_config(const struct node_config *c, char *path)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    assert_non_null(m);
    config_write(c, m);
    assert_int_equal(fclose(m), 0);
    if (path != NULL) {
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, len), (ssize_t)len);
        assert_int_equal(close(fd), 0);
    }
    return text;
}

/* c survives config_write then config_load_file over the built-in default, byte for byte;
 * returns the written text. */
static char *check_round_trip(const struct node_config *c, const char *what)
{
    char path[] = "/tmp/ringraft-test-config-XXXXXX";
    char *text = write_config(c, path);
    struct node_config back;
    config_default(&back);
    char err[600] = "";
    int rc = config_load_file(&back, path, err, sizeof(err));
    unlink(path);
    if (rc != 0) {
        fail_msg("%s: the written config does not load: %s\n%s", what, err, text);
    }
    if (memcmp(&back, c, sizeof(back)) != 0) {
        fail_msg("%s: the config loaded back differs from the one written:\n%s", what, text);
    }
    char *again = write_config(&back, NULL);
    assert_string_equal(again, text);
    free(again);
    return text;
}

/* The number of lines of text equal to line (without its newline). */
static unsigned count_lines(const char *text, const char *line)
{
    unsigned n = 0;
    size_t l = strlen(line);
    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t k = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (k == l && memcmp(p, line, l) == 0) {
            n++;
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    return n;
}

/* The number of lines of text that set o, commented out ("# name value") or not. */
static unsigned count_setting_lines(const char *text, const char *name)
{
    unsigned n = 0;
    size_t l = strlen(name);
    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *q = strncmp(p, "# ", 2) == 0 ? p + 2 : p;
        if (strncmp(q, name, l) == 0 && q[l] == ' ') {
            n++;
        }
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    return n;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fail_msg("%s: %s (run from the top of the tree)", path, strerror(errno));
    }
    char *text = calloc(1, TEXT_MAX);
    assert_non_null(text);
    size_t n = fread(text, 1, TEXT_MAX - 1, f);
    assert_true(n < TEXT_MAX - 1);
    fclose(f);
    return text;
}

static void test_each_setting_round_trips(void **state)
{
    (void)state;
    struct node_config def;
    config_default(&def);
    unsigned rows = 0;
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const struct config_option *o = &config_options[i];
        if (o->name == NULL) {
            continue;
        }
        char value[256], err[600] = "", what[300];
        other_value(o, value, sizeof(value));
        snprintf(what, sizeof(what), "%s %s", o->name, value);
        struct node_config c;
        config_default(&c);
        if (config_set(&c, o->name, value, err, sizeof(err)) != 0) {
            fail_msg("%s: refused: %s", what, err);
        }
        if (memcmp(&c, &def, sizeof(c)) == 0) {
            fail_msg("%s: changed nothing", what);
        }
        char *text = check_round_trip(&c, what);
        if (!o->shorthand) {
            /* Written as the value it holds, exactly once. */
            char line[CONFIG_VALUE_MAX + 64], formatted[CONFIG_VALUE_MAX];
            option_format(o, &c, formatted, sizeof(formatted));
            snprintf(line, sizeof(line), "%s %s", o->name, formatted);
            if (count_lines(text, line) != 1) {
                fail_msg("%s: config_write does not write '%s' once:\n%s", what, line, text);
            }
        }
        free(text);
        rows++;
    }
    assert_true(rows >= 40);
}

static void test_all_settings_round_trip_together(void **state)
{
    (void)state;
    struct node_config c, def;
    config_default(&c);
    config_default(&def);
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const struct config_option *o = &config_options[i];
        if (o->name == NULL) {
            continue;
        }
        char value[256], err[600] = "";
        other_value(o, value, sizeof(value));
        if (config_set(&c, o->name, value, err, sizeof(err)) != 0) {
            fail_msg("%s %s: refused after the rows before it: %s", o->name, value, err);
        }
    }
    char *text = check_round_trip(&c, "every setting changed");
    /* Every row but the shorthand is written, each differing from the default's line. */
    char *text_def = write_config(&def, NULL);
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const struct config_option *o = &config_options[i];
        if (o->name == NULL || o->shorthand) {
            continue;
        }
        assert_int_equal(count_setting_lines(text, o->name), 1);
        char line[CONFIG_VALUE_MAX + 64], formatted[CONFIG_VALUE_MAX];
        option_format(o, &c, formatted, sizeof(formatted));
        snprintf(line, sizeof(line), "%s %s", o->name, formatted);
        if (count_lines(text_def, line) != 0) {
            fail_msg("%s: its changed value is written as the default's", o->name);
        }
    }
    free(text_def);
    free(text);
}

static void test_default_round_trips(void **state)
{
    (void)state;
    struct node_config def;
    config_default(&def);
    char *text = check_round_trip(&def, "the built-in default");
    unsigned only_when_set = 0;
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const struct config_option *o = &config_options[i];
        if (o->name == NULL) {
            continue;
        }
        /* The fault-test switches are left out at their defaults, so that a dumped config
         * loads in every build; every other setting but the shorthand is written once. */
        unsigned want = o->shorthand || o->only_when_set ? 0 : 1;
        if (count_setting_lines(text, o->name) != want) {
            fail_msg("%s: written %u times in the default's dump, not %u:\n%s", o->name,
                     count_setting_lines(text, o->name), want, text);
        }
        only_when_set += o->only_when_set;
    }
    assert_int_equal(only_when_set, 4);
    free(text);
}

/* A node's host is one word of DIR/NODES (io/wire/nodeset.h): `nodes` and RAFT ADDNODE (both
 * through config_parse_node) refuse a host with a space or a control character, which the
 * node would write to DIR/NODES and then refuse at its next start. */
static void test_node_hosts_fit_the_node_set_file(void **state)
{
    (void)state;
    struct node_address a;
    assert_int_equal(config_parse_node("2=db2.example:7002@17002", &a), 0);
    assert_string_equal(a.host, "db2.example");
    assert_int_equal(config_parse_node("2=::1:7002", &a), 0);
    assert_string_equal(a.host, "::1");
    static const char *const bad[] = {"2=a b:7002", "2=a\tb:7002", "2=a\nnode 9 x 1 1:7002",
                                      "2=\x7f:7002", "2=:7002"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(config_parse_node(bad[i], &a), -1);
    }
}

static void test_fault_switches_are_refused_here(void **state)
{
    (void)state;
    /* This build is not the fault-test build: each switch parses, but the configuration is
     * refused (the rule config_write's only_when_set keeps away from dumped configs). */
    static const char *const set[][2] = {
        {"unsafe-test-mode", "ack-before-fsync"},
        {"test-power-loss", "yes"},
        {"test-wal-segment-bytes", "65536"},
        {"test-resolve-delay-ms", "3000"},
    };
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
        struct node_config c;
        config_default(&c);
        char err[600] = "";
        assert_int_equal(config_set(&c, set[i][0], set[i][1], err, sizeof(err)), 0);
        assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "fault-test build"));
        const struct config_option *o = option_find(set[i][0]);
        assert_true(o != NULL && o->only_when_set);
    }
    struct node_config c;
    config_default(&c);
    char err[600] = "";
    assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
}

/* Every row has exactly one line in text, "name value" or "# name value". */
static void check_sample_names_every_setting(const char *text, const char *what)
{
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const struct config_option *o = &config_options[i];
        if (o->name != NULL && count_setting_lines(text, o->name) != 1) {
            fail_msg("%s: %u lines set %s, not 1", what, count_setting_lines(text, o->name),
                     o->name);
        }
    }
}

static void test_sample_configs_name_every_setting(void **state)
{
    (void)state;
    struct node_config def;
    config_default(&def);
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    assert_non_null(m);
    config_write_sample(&def, m);
    assert_int_equal(fclose(m), 0);
    check_sample_names_every_setting(text, "--sample-config");
    free(text);
    text = read_text(SAMPLE_PATH);
    check_sample_names_every_setting(text, SAMPLE_PATH " (make sample-config rewrites it)");
    free(text);
}

static void test_man_page_names_every_setting(void **state)
{
    (void)state;
    char *text = read_text(MAN_PATH);
    const char *settings = strstr(text, "\n.SH SETTINGS\n");
    assert_non_null(settings);
    const char *end = strstr(settings + 1, "\n.SH ");
    assert_non_null(end);
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const struct config_option *o = &config_options[i];
        if (o->name == NULL) {
            continue;
        }
        /* A ".TP" entry headed ".B name" or ".BI name ..." (groff writes '-' as "\-"). */
        char escaped[128] = "";
        size_t n = 0;
        for (const char *p = o->name; *p != '\0' && n + 3 < sizeof(escaped); p++) {
            if (*p == '-') {
                escaped[n++] = '\\';
            }
            escaped[n++] = *p;
        }
        escaped[n] = '\0';
        bool found = false;
        static const char *const heads[] = {".B ", ".BI "};
        static const char *const tails[] = {"\n", " "};
        for (size_t h = 0; h < 2 * 2 && !found; h++) {
            char needle[200];
            snprintf(needle, sizeof(needle), "\n.TP\n%s%s%s", heads[h / 2], escaped, tails[h % 2]);
            const char *at = strstr(settings, needle);
            found = at != NULL && at < end;
        }
        if (!found) {
            fail_msg("%s has no entry for %s in SETTINGS", MAN_PATH, o->name);
        }
    }
    free(text);
}

static void test_help_lists_every_setting(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    assert_non_null(m);
    config_write_help(m);
    assert_int_equal(fclose(m), 0);
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const struct config_option *o = &config_options[i];
        if (o->name == NULL) {
            continue;
        }
        /* "  --name ARG   help", one line of at most 100 columns. */
        char flag[80];
        snprintf(flag, sizeof(flag), "  --%s %s ", o->name, o->arg);
        const char *at = strstr(text, flag);
        if (at == NULL || (at != text && at[-1] != '\n')) {
            fail_msg("--help has no line for %s", o->name);
        }
        const char *nl = strchr(at, '\n');
        assert_non_null(nl);
        if (nl - at > 100) {
            fail_msg("--help's line for %s is %d columns wide", o->name, (int)(nl - at));
        }
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_each_setting_round_trips, setup),
        cmocka_unit_test_setup(test_all_settings_round_trip_together, setup),
        cmocka_unit_test_setup(test_default_round_trips, setup),
        cmocka_unit_test_setup(test_fault_switches_are_refused_here, setup),
        cmocka_unit_test_setup(test_node_hosts_fit_the_node_set_file, setup),
        cmocka_unit_test_setup(test_sample_configs_name_every_setting, setup),
        cmocka_unit_test_setup(test_man_page_names_every_setting, setup),
        cmocka_unit_test_setup(test_help_lists_every_setting, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
