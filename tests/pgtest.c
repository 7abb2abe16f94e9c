/* pgtest.c — see pgtest.h. */
#define _GNU_SOURCE
#include "pgtest.h"

#include <check.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[64];
static int g_port;
static pid_t g_owner;

static void stop_server(void)
{
    if (getpid() != g_owner) /* a forked test exiting: the server is the runner's */
        return;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "tests/pg_server.sh stop %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "pgtest: stopping the server in %s failed\n", g_dir);
}

void td_pgtest_server(void)
{
    if (g_port) return;
    snprintf(g_dir, sizeof g_dir, "/tmp/traind_pg_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("pgtest: mkdtemp");
        exit(1);
    }
    char cmd[256];
    for (int attempt = 0; attempt < 5 && !g_port; attempt++) {
        int port = 20000 + (int)((getpid() * 7919 + attempt * 104729) % 30000);
        snprintf(cmd, sizeof cmd, "tests/pg_server.sh start %s %d", g_dir, port);
        if (system(cmd) == 0)
            g_port = port;
        else /* a port in use: a fresh directory for the next try */
            snprintf(cmd, sizeof cmd, "rm -rf %s/data", g_dir), (void)!system(cmd);
    }
    if (!g_port) {
        fprintf(stderr, "pgtest: cannot start PostgreSQL (tests/pg_server.sh; make test-deps)\n");
        exit(1);
    }
    g_owner = getpid();
    atexit(stop_server);
}

void td_pgtest_newdb(char *uri, size_t cap)
{
    static int seq;
    char conninfo[256], name[64], sql[128];
    ck_assert_msg(g_port != 0, "td_pgtest_server was not called");
    snprintf(conninfo, sizeof conninfo, "host=%s port=%d user=traind dbname=postgres", g_dir,
             g_port);
    snprintf(name, sizeof name, "t_%d_%d", (int)getpid(), ++seq);
    PGconn *c = PQconnectdb(conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "pgtest: %s", PQerrorMessage(c));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "pgtest: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    snprintf(uri, cap, "postgresql:///%s?host=%s&port=%d&user=traind", name, g_dir, g_port);
}
