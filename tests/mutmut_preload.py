"""A pytest plugin for mutmut's runs only (`-p tests.mutmut_preload` in [tool.mutmut]).

mutmut forks each mutant's test run from a fork server that has collected the tests. Imported
here, TensorFlow and Keras are in that server already, so a mutant whose tests use them does
not import them again (3 s each, for several hundred mutants). Importing them before a fork is
safe; running a TensorFlow op before one is not (the child then spins in its first op), which
is why mutmut's "fork" isolation, whose parent has run the whole suite, is not used.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("tensorflow") is not None:  # the slim install has none
    import keras  # noqa: F401
    import tensorflow  # noqa: F401


def pytest_collection_modifyitems(items):
    """In a mutant's run, the cheapest tests first: a mutant is killed by its first failing
    test (mutmut runs pytest -x), and most are killed by a quick one. mutmut hands the tests
    over in no particular order. Each file's tests stay together (a file's fixtures are made
    once), the files ordered by the time their tests took in mutmut's clean run
    (mutants/mutmut-stats.json), and the tests within a file likewise."""
    import json
    import os
    from pathlib import Path

    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return  # the stats, the clean run: every test, in the suite's order
    try:
        took = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)
    for tests in files.values():
        tests.sort(key=lambda item: took.get(item.nodeid, 0.0))
    ordered = sorted(files.values(), key=lambda ts: sum(took.get(t.nodeid, 0.0) for t in ts))
    items[:] = [item for tests in ordered for item in tests]
