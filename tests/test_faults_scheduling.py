"""Two processes on one ``sckd demo --out`` (issue 29): while one trains the teacher, the other
trains the baseline, whose only input is the world; only the student (and the teacher's
evaluation) wait for the teacher. The demo's real stage graph runs with stand-in work."""

from __future__ import annotations

import threading
from dataclasses import replace

from sckd.workflows.demo import Demo, load_demo_config
from sckd.workflows.pipeline import Pipeline


def _demo_stages(out, log, teacher_started, teacher_release):
    stages = []
    for st in Demo(out, load_demo_config("demo/quick")).stages():
        def run(st=st):
            log.append((st.name, threading.current_thread().name, teacher_release.is_set()))
            if st.name == "train-teacher":
                teacher_started.set()
                assert teacher_release.wait(30)
            for p in st.outputs:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(st.name)
        stages.append(replace(st, run=run))
    return stages


def test_second_process_trains_the_baseline_while_the_teacher_trains(tmp_path):
    out = tmp_path / "demo"
    log: list[tuple[str, str, bool]] = []
    started, release = threading.Event(), threading.Event()

    def say(line):  # the second runner found nothing it could run: let the teacher finish
        if "another process is running it" in line:
            release.set()

    first = threading.Thread(target=lambda: Pipeline(out, _demo_stages(out, log, started, release),
                                                     lambda s: None).run(), name="first")
    first.start()
    assert started.wait(30)
    Pipeline(out, _demo_stages(out, log, started, release), say).run()
    first.join(30)
    names = [x[0] for x in log]
    assert sorted(names) == sorted(set(names)), log  # nothing ran twice
    assert ("train-baseline", "MainThread", False) in log, log  # beside the teacher, not after it
    assert ("eval-baseline", "MainThread", False) in log, log
    student = next(x for x in log if x[0] == "train-student")
    assert student[2], log  # the student started only once the teacher was done
    assert names.index("figures") == len(names) - 1
