"""The test suite's own layout: `make test` collects every test directory in one pytest
run, whose import mode (rootdir, tests/ on the path, no packages) refuses two test
modules with one name: the whole run stops at collection."""

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_name():
    where = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        if "__pycache__" not in path.parts and "node_modules" not in path.parts:
            where[path.name].append(str(path.relative_to(TESTS)))
    shared = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not shared, f"rename one of each: {shared}"


def test_no_test_module_imports_a_conftest():
    """Each directory's conftest.py is imported as the module `conftest`: in one run the
    name means whichever came last, so what tests share lives in tests/*test.py."""
    importing = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if "__pycache__" not in path.parts
        and any(
            line.strip().startswith(("from conftest import", "import conftest"))
            for line in path.read_text().splitlines()
        )
    ]
    assert not importing, f"import from a tests/*test.py helper instead: {importing}"
