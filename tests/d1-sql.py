"""A test's own connection to a running worker's local D1 (tests/harness.mjs, `worker.d1()`).

Reads the SQLite file that workerd keeps for the database: one JSON line in ({"sql": ...}), one
out ({"rows": [...]} or {"error": ...}). A plain SQLite connection reads without taking the
write lock (the file is in WAL mode), so polling it never makes the worker's own writes fail
with SQLITE_BUSY, as a second workerd opening the database (`wrangler d1 execute`) does.
"""

import json
import sqlite3
import sys


def statements(sql):
    """The statements of `sql`, as `wrangler d1 execute --command` runs them, one by one."""
    out, current = [], ""
    for char in sql:
        current += char
        if char == ";" and sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


def value(v):
    return list(v) if isinstance(v, bytes) else v


def main():
    # Autocommit: no transaction (and so no lock) is held between requests; a write waits for
    # the worker's lock rather than failing.
    db = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
    for line in sys.stdin:
        try:
            rows = []
            for statement in statements(json.loads(line)["sql"]):
                cursor = db.execute(statement)
                names = [d[0] for d in cursor.description or []]
                rows += [{n: value(v) for n, v in zip(names, row)} for row in cursor.fetchall()]
            reply = {"rows": rows}
        except sqlite3.Error as e:
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


main()
