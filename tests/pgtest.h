/* pgtest.h — a throwaway PostgreSQL server for the suites (tests/pg_server.sh).
 *
 * td_pgtest_server starts one server per test runner (on a free port, in a temp dir) the
 * first time it is called, and stops it when the runner exits; call it from a suite's
 * constructor (which runs in the runner, before Check forks the tests). A server that
 * cannot start fails the run with the reason: make test-deps installs postgresql. */
#ifndef TRAIND_TESTS_PGTEST_H
#define TRAIND_TESTS_PGTEST_H

#include <stddef.h>

void td_pgtest_server(void);
/* Creates a fresh, empty database and writes its libpq URI to uri. */
void td_pgtest_newdb(char *uri, size_t cap);

#endif
