"""The pieces of wedge detection that read text: /proc/locks lines and Dolt's read-only refusals."""

from __future__ import annotations

import pymysql

from gastown_tasks.ops.server.wedge import is_read_only_error, locks_held

LOCKS = """\
1: FLOCK  ADVISORY  WRITE 4208 fe:00:9977957 0 EOF
2: FLOCK  ADVISORY  WRITE 25377 fe:00:10338547 0 EOF
3: POSIX  ADVISORY  READ 4208 08:01:77 0 EOF
4: FLOCK  ADVISORY  WRITE 4208 fe:00:9978093 0 EOF
4: -> FLOCK  ADVISORY  WRITE 4208 fe:00:555 0 EOF
5: garbage
"""


def test_only_the_locks_that_pid_holds_count_and_a_waiting_one_does_not() -> None:
    assert locks_held(LOCKS, 4208) == {(0xFE, 0, 9977957), (8, 1, 77), (0xFE, 0, 9978093)}
    assert locks_held(LOCKS, 1) == set()


def test_dolts_read_only_refusals_are_read_only_and_other_errors_are_not() -> None:
    assert is_read_only_error(pymysql.err.OperationalError(1105, "cannot update manifest: database is read only"))
    assert is_read_only_error(pymysql.err.OperationalError(1105, "database server is set to read only mode"))
    assert is_read_only_error(pymysql.err.OperationalError(1105, "Database hq is read-only."))
    assert is_read_only_error(pymysql.err.OperationalError(1290, "--read-only option"))
    assert not is_read_only_error(pymysql.err.OperationalError(1105, "table not found: probe"))
