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
