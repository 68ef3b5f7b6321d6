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


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for tests of small networks: on a 2-core machine shared with other work
    a second one mostly waits (measured: 3 s per full-size VoD step with one thread, 15-20 s with
    two under load), and both runs of a bitwise comparison use the same count."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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


# Nothing a test does may leave a file in the repository tree: every path a test writes lies under
# tmp_path. The session fails when the tree (outside ignored build folders) gained a file.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SKIP_DIRS = {".git", ".venv", "__pycache__", ".ruff_cache"}


def _repo_files() -> set[str]:
    found = set()
    for top, dirs, files in os.walk(_REPO):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        found.update(os.path.relpath(os.path.join(top, f), _REPO) for f in files if not f.endswith(".nbi")
                     and not f.endswith(".nbc"))
    return found


def pytest_sessionstart(session):
    session.config._sckd_files_before = _repo_files()


def pytest_sessionfinish(session, exitstatus):
    new = sorted(_repo_files() - getattr(session.config, "_sckd_files_before", set()))
    if new:
        session.config.get_terminal_writer().line(
            f"tests wrote into the repository tree: {', '.join(new[:10])}", red=True)
        session.exitstatus = 1
