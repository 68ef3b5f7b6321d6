"""Docs that cannot rot: every ``sckd`` command printed in README.md and docs/*.md parses against
the real argument parser, the cheap ones run on a tiny world, every relative link resolves.

Commands come from code blocks (fenced, or indented by four spaces; ``\\`` continues a line,
``#`` starts a comment). Each must parse with :func:`sckd.cli.build_parser` as written. Those of
:data:`RUN` subcommands then run for real, in document order, in a fresh folder per page where
the placeholders the pages use are real files (:func:`placeholders` is the substitution table);
a YAML block whose first line is ``# file: NAME`` is written there first. Inline ``sckd ...``
spans (the command table, prose) are checked for their subcommand and every ``--flag``.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
from helpers.astyx_tree import simple_frames, write_astyx
from helpers.tiny_student import train_on_tiny_world

from sckd.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN = {"synth", "info", "eval", "predict", "export", "view"}
"""Subcommands cheap enough on a tiny world to run in the test."""
OPTIONAL = {"export": "onnxscript", "view": "rerun"}
"""A command needing an optional extra runs only where it is installed (else it only parses)."""
TINY_SYNTH = ["--frames", "12", "--set", "synth.sequence.frames_per_sequence=4"]
KNOWN = {"WORLD", "ROOT", "ASTYX_ROOT", "PRED_DIR", "RUN", "DEMO", "CKPT"}
"""Placeholders with a real target in the test (see :func:`placeholders`); a command naming any
other upper-case placeholder only parses."""


@dataclass
class Command:
    page: Path
    line: int
    argv: list[str]
    """The arguments after ``sckd``."""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}: sckd {' '.join(self.argv)}"


def code_blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """(first line number, info string, lines) of every fenced or indented code block."""
    blocks, lines = [], text.split("\n")
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            blocks.append((i + 2, ln[3:].strip(), lines[i + 1:j]))
            i = j + 1
        elif ln.startswith("    ") and ln.strip() and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            blocks.append((i + 1, "", [x[4:] for x in lines[i:j]]))
            i = j
        else:
            i += 1
    return blocks


def page_commands(page: Path) -> list[Command]:
    out = []
    for first, _, lines in code_blocks(page.read_text()):
        k = 0
        while k < len(lines):
            start, text = k, lines[k]
            while text.rstrip().endswith("\\") and k + 1 < len(lines):
                k += 1
                text = text.rstrip()[:-1] + " " + lines[k]
            k += 1
            if text.split()[:1] != ["sckd"]:  # other lines of a block need not be shell at all
                continue
            tokens = shlex.split(text, comments=True)
            if tokens[:1] == ["sckd"]:
                out.append(Command(page, first + start, tokens[1:]))
    return out


def yaml_files(page: Path) -> dict[str, str]:
    """``# file: NAME`` YAML blocks of a page: name -> text."""
    out = {}
    for _, info, lines in code_blocks(page.read_text()):
        m = re.match(r"#\s*file:\s*(\S+)", lines[0]) if lines else None
        if info in ("yaml", "yml") and m:
            out[m.group(1)] = "\n".join(lines) + "\n"
    return out


ALL = [c for p in PAGES for c in page_commands(p)]


def subparsers() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_the_pages_hold_commands_and_the_glance_heading():
    assert len(PAGES) >= 7 and len(ALL) >= 20
    assert {c.argv[0] for c in ALL if c.argv} >= {"synth", "info", "train", "eval", "predict", "export", "view",
                                                  "reproduce"}
    readme = (REPO / "README.md").read_text()
    assert "\n### Astyx HiRes2019 at a glance\n" in readme  # the lead replaces this table: keep the heading
    assert "make demo" in readme and "make test" in readme
    assert len(readme.splitlines()) < 200  # a front door: what moved lives in docs/


def unknown_flags(words: list[str]) -> list[str]:
    """The ``--flags`` of ``sckd WORDS`` its parser does not define by that exact name (argparse
    would take an abbreviation such as ``--frame`` for ``--frames``; a page must not)."""
    top, subs = build_parser()._option_string_actions, subparsers()
    bad = []
    while words and words[0].startswith("-"):  # sckd --version, sckd --debug ...
        bad += [] if words[0] in top else [words[0]]
        words = words[1:]
    if not words:
        return bad
    if words[0] not in subs:
        return bad + [f"subcommand {words[0]}"]
    known = subs[words[0]]._option_string_actions
    flags = (w.strip("[]{}()").split("=")[0] for w in words[1:])
    return bad + [f for f in flags if f.startswith("--") and f not in known]


@pytest.mark.parametrize("cmd", ALL, ids=[c.where[:90] for c in ALL])
def test_every_documented_command_parses(cmd):
    assert not unknown_flags(cmd.argv), f"{cmd.where}: no {unknown_flags(cmd.argv)}"
    parser = build_parser()
    try:
        parser.parse_args(cmd.argv)
    except SystemExit as e:
        assert e.code == 0 and ("--version" in cmd.argv or "--help" in cmd.argv), f"does not parse: {cmd.where}"


def _inline_spans(text: str) -> list[tuple[int, str]]:
    """``sckd ...`` inline code spans outside code blocks: (line number, span)."""
    fenced = {n for first, _, lines in code_blocks(text) for n in range(first - 1, first + len(lines) + 1)}
    out = []
    for n, ln in enumerate(text.split("\n"), 1):
        if n in fenced:
            continue
        cmds = [m.group(1) for m in re.finditer(r"`(sckd [^`]+)`", ln)]
        out += [(n, c) for c in cmds]
        if ln.startswith("| `sckd ") and cmds:  # a command table row: its bare `--flag ...` spans
            sub = cmds[0].split()[1]  # are flags of the subcommand in its first cell
            out += [(n, f"sckd {sub} {m.group(1)}") for m in re.finditer(r"`(--[^`]+)`", ln)]
    return out


def test_every_inline_command_names_real_flags():
    bad = [f"{page.name}:{n}: {span}: no {unknown_flags(span.replace(chr(92) + '|', '|').split()[1:])}"
           for page in PAGES for n, span in _inline_spans(page.read_text())
           if unknown_flags(span.replace(chr(92) + "|", "|").split()[1:])]
    assert not bad, "\n".join(bad)


def test_help_of_every_subcommand_runs(cli, capsys):
    for name in subparsers():
        with pytest.raises(SystemExit) as e:
            cli(name, "--help")
        assert e.value.code == 0
        assert f"usage: sckd {name}" in capsys.readouterr().out


def test_version_is_the_package_metadata(cli, capsys):
    with pytest.raises(SystemExit) as e:
        cli("--version")
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"sckd {version('sckd')}"


# ------------------------------------------------------------------------------ running them


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The placeholders' targets: a tiny synthetic world, a 121-frame Astyx folder (ids 000000 to
    000120), a radar model reading x y z v_r (runs on both), prediction folders of it on both."""
    from sckd.cli import main

    base = tmp_path_factory.mktemp("docs")
    world, ckpt = train_on_tiny_world(base, 12, "experiments/synth/cross_gt", "--set", "train.epochs=1",
                                      "--set", "train.val_every=5", "--set", "train.batch_size=2")
    astyx = write_astyx(base / "astyx", simple_frames(121))
    mp = pytest.MonkeyPatch()
    mp.setenv("SCKD_CACHE", str(base / "cache"))
    for name, root in (("world", world), ("astyx", astyx)):
        assert main(["-q", "predict", str(ckpt), str(root), "--split", "val", "--out", str(base / f"preds_{name}")]) == 0
    yield {"base": base, "world": world, "astyx": astyx, "ckpt": ckpt}
    mp.undo()


def placeholders(w: dict, cwd: Path) -> None:
    """The substitution table, as files in the page's working folder: each placeholder the pages
    use is a real path there."""
    links = {"WORLD": w["world"], "ROOT": w["world"], "ASTYX_ROOT": w["astyx"],
             "PRED_DIR_world": w["base"] / "preds_world", "PRED_DIR_astyx": w["base"] / "preds_astyx"}
    for name, target in links.items():
        (cwd / name).symlink_to(target)
    for ckpt in ("RUN/checkpoints/best.pt", "RUN/checkpoints/final.pt", "DEMO/checkpoints/student.pt", "CKPT"):
        (cwd / ckpt).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(w["ckpt"], cwd / ckpt)
    bare = cwd / "radar" / "training" / "velodyne" / "00549.bin"  # VoD's public example frame's name
    bare.parent.mkdir(parents=True)
    shutil.copy(w["world"] / "radar_5frames" / "training" / "velodyne" / "00000.bin", bare)


def substitute(argv: list[str], n: int) -> list[str]:
    """Per-command substitutions: PRED_DIR is the prediction folder of the dataset the command
    names; ``sckd synth`` writes a tiny world into a new folder."""
    data = "astyx" if "ASTYX_ROOT" in argv else "world"
    argv = [f"PRED_DIR_{data}" if a == "PRED_DIR" else a for a in argv]
    if argv[0] == "synth":
        rest = argv[2:]
        if "--frames" in rest:
            i = rest.index("--frames")
            rest = rest[:i] + rest[i + 2:]
        argv = ["synth", f"synth_out_{n}", *rest, *TINY_SYNTH, "--no-progress"]
    return argv


def runnable(cmd: Command) -> bool:
    sub = cmd.argv[0] if cmd.argv else ""
    if sub not in RUN or (sub in OPTIONAL and importlib.util.find_spec(OPTIONAL[sub]) is None):
        return False
    if any(a.startswith("/") and not Path(a).exists() for a in cmd.argv):  # the reader's own data
        return False
    caps = [a.split("/")[0] for a in cmd.argv if re.fullmatch(r"[A-Z][A-Z0-9_]+(/.*)?", a)]
    return all(c in KNOWN for c in caps)  # another placeholder (TJ4D_ROOT, ...): parse only


RUN_PAGES = [p for p in PAGES if any(runnable(c) for c in page_commands(p))]


@pytest.mark.parametrize("page", RUN_PAGES, ids=[p.name for p in RUN_PAGES])
def test_cheap_commands_run_on_a_tiny_world(page, world, tmp_path, monkeypatch, capsys):
    from sckd.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCKD_CACHE", str(world["base"] / "cache"))
    monkeypatch.delenv("DISPLAY", raising=False)  # --spawn must not open a window here
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    placeholders(world, tmp_path)
    for name, text in yaml_files(page).items():
        (tmp_path / name).write_text(text)
    ran = 0
    for n, cmd in enumerate(page_commands(page)):
        if not runnable(cmd):
            continue
        rc = main(substitute(cmd.argv, n))
        err = capsys.readouterr().err
        assert rc == 0, f"{cmd.where} exited {rc}: {err.strip().splitlines()[-1:]}"
        ran += 1
    assert ran


# ------------------------------------------------------------------------------ links


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = page.read_text()
    fenced = {n for first, _, lines in code_blocks(text) for n in range(first - 1, first + len(lines) + 1)}
    return {slug(ln.lstrip("#")) for n, ln in enumerate(text.split("\n"), 1)
            if ln.startswith("#") and n not in fenced}


def test_every_relative_link_resolves():
    bad = []
    for page in PAGES:
        text = re.sub(r"`[^`\n]*`", "", page.read_text())  # links inside code spans are not links
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                bad.append(f"{page.name}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{page.name}: {target}: no heading with that anchor in {dest.name}")
    assert not bad, "\n".join(bad)
