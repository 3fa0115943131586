"""The import rules of DESIGN.md, checked on every test run."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_domain_imports_only_stdlib_biip_and_itself():
    allowed_third_party = {"biip"}
    for path in (ROOT / "app" / "domain").rglob("*.py"):
        for name in imported_modules(path):
            top = name.split(".")[0]
            ok = (
                top in sys.stdlib_module_names
                or top in allowed_third_party
                or name == "app.domain"
                or name.startswith("app.domain.")
                or top == "__future__"
            )
            assert ok, f"{path.relative_to(ROOT)} imports {name}"


def test_only_ui_and_bootstrap_import_kivy():
    for path in [*(ROOT / "app").rglob("*.py"), *(ROOT / "devices").rglob("*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("app/ui/") or rel == "app/bootstrap.py":
            continue
        kivy = [n for n in imported_modules(path) if n.split(".")[0] == "kivy"]
        assert not kivy, f"{rel} imports {kivy}"


def test_every_module_has_a_docstring():
    for folder in ("app", "devices", "bench", "seeds"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            assert ast.get_docstring(tree), f"{path.relative_to(ROOT)} needs a module docstring"


# --- SQL runs only in app/storage ---------------------------------------------------------------
# Every table has one owner module in app/storage; everything else calls its methods. Not
# scanned: app/storage itself, and devices/sim, whose simulators (the membership backend, the
# payment provider) are separate programs with their own databases, not the kiosk's.
SQL_EXEMPT_DIRS = ("app/storage/", "devices/sim/")
SQL_METHODS = {"execute", "executemany", "executescript"}
SQL_WORDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "PRAGMA",
             "WITH", "BEGIN", "COMMIT", "ROLLBACK", "REPLACE")

# SQL still in files another change is rewriting (the lane package, staff mode, the scenario
# harness); each is replaced by a storage method (see the integration notes of the storage
# boundary). One entry per statement: (file, the start of its SQL). The integrator removes
# each entry as the call is replaced; an entry that no longer matches anything fails too.
SQL_NOT_YET_MOVED = [
    ("app/services/lane.py", "SELECT member_provisional FROM sessions"),
    ("app/services/lane.py", "SELECT type, payload FROM outbox"),
    ("app/services/lane.py", "SELECT sale, exit_pass, job_id FROM print_jobs"),
    ("app/services/lane.py", "SELECT session_id FROM sessions WHERE order_id"),
    ("app/services/lane.py", "SELECT value FROM lane_state"),
    ("app/services/lane.py", "INSERT OR REPLACE INTO lane_state"),
    ("app/services/staff.py", "SELECT order_id, sale FROM sales"),
    ("app/harness.py", "SELECT count(*) FROM payments"),
    ("app/harness.py", "SELECT type FROM outbox"),
    ("app/harness.py", "SELECT out_trade_no FROM payments ORDER BY"),
    ("app/harness.py", "SELECT state FROM payments ORDER BY"),
    ("app/harness.py", "SELECT staff_flag FROM payments ORDER BY"),
    ("app/harness.py", "SELECT count(*) FROM print_jobs WHERE status"),
    ("app/harness.py", "SELECT out_trade_no, state, amount_minor, staff_flag FROM"),
    ("app/harness.py", "SELECT DISTINCT exit_pass FROM print_jobs"),
    ("app/harness.py", "SELECT type, count(*) FROM outbox GROUP BY type"),
    ("app/harness.py", "SELECT count(*) FROM events"),
]


def _is_database(expression: str) -> bool:
    last = expression.rsplit(".", 1)[-1].lower()
    return last in {"db", "conn", "connection", "database"} or last.endswith("_db")


def _sql_text(call: ast.Call) -> str:
    first = call.args[0] if call.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    if isinstance(first, ast.JoinedStr):  # an f-string: its literal parts
        return "".join(v.value for v in first.values
                       if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return ""


def sql_uses(source: str) -> list[tuple[int, str]]:
    """Where ``source`` runs SQL: (line, the SQL text if it is a literal, else what runs it).

    Found: ``.execute/.executemany/.executescript(``, sqlite-utils' ``db.query(``,
    ``db.table(`` and ``db[...]``, and opening a database (``sqlite3.connect``,
    ``sqlite_utils.Database(``). A payment provider's ``.query(order_id)`` (the order
    query of WeChat Pay and Alipay) is not SQL: ``.query`` counts on a database object
    or with SQL text.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, receiver = node.func.attr, ast.unparse(node.func.value)
            sql = _sql_text(node)
            what = sql or f"{receiver}.{attr}(...)"
            if attr in SQL_METHODS or attr == "table":
                found.append((node.lineno, what))
            elif attr == "query" and (_is_database(receiver)
                                      or sql.lstrip().upper().startswith(SQL_WORDS)):
                found.append((node.lineno, what))
            elif (receiver, attr) in {("sqlite3", "connect"), ("sqlite_utils", "Database")}:
                found.append((node.lineno, f"{receiver}.{attr}(...)"))
        elif isinstance(node, ast.Subscript) and _is_database(ast.unparse(node.value)):
            found.append((node.lineno, f"{ast.unparse(node.value)}[...]"))
        elif isinstance(node, ast.ImportFrom) and node.module in ("sqlite3", "sqlite_utils") \
                and any(a.name in ("connect", "Database") for a in node.names):
            found.append((node.lineno, f"from {node.module} import ..."))
    return sorted(found)


def test_the_sql_finder_finds_sql_and_only_sql():
    source = (
        "kiosk.db.execute('SELECT 1')\n"
        "self.conn.executemany(f'UPDATE t SET a = {x}', rows)\n"
        "db.query('SELECT * FROM products')\n"
        "self.db['products'].insert({})\n"
        "db.table('outbox').count\n"
        "sqlite3.connect(path)\n"
        "sqlite_utils.Database(conn)\n"
        "from sqlite3 import connect\n"
        "provider.query(out_trade_no)\n"  # a payment order query: not SQL
        "self.provider.query('HEALTHCHECK0000')\n"
        "self.backend.store.conn.close()\n"
        "rows[0]\n"
    )
    assert [line for line, _ in sql_uses(source)] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert sql_uses(source)[0][1] == "SELECT 1"


def test_sql_runs_only_in_app_storage():
    found: list[tuple[str, int, str]] = []
    for folder in ("app", "devices"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(SQL_EXEMPT_DIRS):
                continue
            found += [(rel, line, sql) for line, sql in sql_uses(path.read_text("utf-8"))]
    waiting = list(SQL_NOT_YET_MOVED)
    outside = []
    for rel, line, sql in found:
        match = next((w for w in waiting if w[0] == rel and sql.startswith(w[1])), None)
        if match is not None:
            waiting.remove(match)
        else:
            outside.append(f"{rel}:{line}: {sql[:70]!r}")
    assert not outside, ("SQL outside app/storage; give it a method on the table's owner in "
                         "app/storage:\n" + "\n".join(outside))
    assert not waiting, ("these SQL_NOT_YET_MOVED entries match nothing any more: remove "
                         f"them from the list: {waiting}")
