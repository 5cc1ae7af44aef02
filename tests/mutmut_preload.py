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
