import os

import pytest

# Tests are CPU-only and must not fight over the 2 cores of CI machines.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def cli():
    """Run the sckd command in-process: returns (exit code, stdout, stderr)."""
    from sckd.cli import main

    def run(*args, capsys=None):
        return main([str(a) for a in args])

    return run


# hypothesis keeps its example database and a constants cache in ./.hypothesis by default: point
# it at a temporary folder so that nothing is written into the repository.
try:
    import atexit
    import shutil
    import tempfile

    from hypothesis.configuration import set_hypothesis_home_dir

    _hypothesis_home = tempfile.mkdtemp(prefix="sckd-hypothesis-")
    set_hypothesis_home_dir(_hypothesis_home)
    atexit.register(shutil.rmtree, _hypothesis_home, ignore_errors=True)
except ImportError:  # hypothesis is a dev extra
    pass
