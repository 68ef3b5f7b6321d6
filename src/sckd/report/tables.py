"""Result tables and the Markdown report of a multi-model job (``sckd demo``, ``sckd reproduce``).

Scores come from the VoD metric's :class:`EvalResult` (R11, percent), one per model; tables are
laid out like the SCKD paper's: 3D AP per class and mAP in the entire annotated area (EAA) and
the driving corridor (DC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from sckd.atomic import write_text_atomic
from sckd.eval.result import EvalResult, abbreviate

REGIONS = (("entire_area", "EAA"), ("roi", "DC"))


@dataclass
class ModelScores:
    """One table row: 3D AP|R11 per class and the mean, per region (percent)."""

    label: str
    ap: dict[str, dict[str, float]]
    """region (``entire_area``, ``roi``) -> {class or ``mAP``: AP}."""

    @classmethod
    def from_result(cls, label: str, result: EvalResult, classes: list[str]) -> ModelScores:
        """3D AP|R11 per class and the mean over ``classes``; a class or region the result does
        not hold is NaN (shown as such, never as 0)."""
        ap: dict[str, dict[str, float]] = {}
        for region, _ in REGIONS:
            have = region in result.regions
            row = {c: result.ap(region, c) if have and c in result.classes else math.nan for c in classes}
            row["mAP"] = sum(row.values()) / len(row) if classes else math.nan
            ap[region] = row
        return cls(label, ap)

    def values(self, classes: list[str]) -> list[float]:
        return [self.ap[r][c] for r, _ in REGIONS for c in [*classes, "mAP"]]


def columns(classes: list[str]) -> list[str]:
    return [f"{tag} {abbreviate(c)}" for _, tag in REGIONS for c in [*classes, "mAP"]]


def gain(a: ModelScores, b: ModelScores, label: str) -> ModelScores:
    """Row ``a - b`` (percentage points)."""
    return ModelScores(label, {r: {k: a.ap[r][k] - b.ap[r][k] for k in a.ap[r]} for r in a.ap})


def format_text_table(rows: list[ModelScores], classes: list[str], gains: list[ModelScores] = (),
                      reference: dict[str, tuple[float, float]] | None = None) -> str:
    """Fixed-width table for the terminal. ``gains`` rows are printed signed below a rule;
    ``reference`` (row label -> (EAA mAP, DC mAP)) adds the paper's numbers as a last column."""
    n = len(classes) + 1
    label_w = max([len(r.label) for r in [*rows, *gains]] + [5]) + 1
    group = 7 * n
    head1 = " " * label_w + "".join(f"| {name:^{group - 1}}" for name in ("entire annotated area (EAA)",
                                                                          "driving corridor (DC)"))
    cols = [abbreviate(c) for c in classes] + ["mAP"]
    head2 = f"{'model':<{label_w}}" + ("|" + "".join(f"{c:>7}" for c in cols)) * 2
    if reference:
        head1 += "| paper (VoD)"
        head2 += "|  EAA /  DC"
    lines = [head1, head2, "-" * len(head2)]

    def line(r: ModelScores, signed: bool) -> str:
        fmt = "{:+7.2f}" if signed else "{:7.2f}"
        cells = "".join("|" + "".join(fmt.format(r.ap[reg][k]) for k in [*classes, "mAP"]) for reg, _ in REGIONS)
        ref = ""
        if reference is not None:
            e_d = reference.get(r.label)
            ref = f"| {e_d[0]:5.2f} / {e_d[1]:5.2f}" if e_d else "|"
        return f"{r.label:<{label_w}}{cells}{ref}"

    lines += [line(r, False) for r in rows]
    if gains:
        lines.append("-" * len(head2))
        lines += [line(g, True) for g in gains]
    return "\n".join(lines)


def format_markdown_table(rows: list[ModelScores], classes: list[str], gains: list[ModelScores] = (),
                          reference: dict[str, tuple[float, float]] | None = None) -> str:
    cols = columns(classes) + (["paper EAA / DC"] if reference else [])
    out = ["| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r, signed in [(r, False) for r in rows] + [(g, True) for g in gains]:
        cells = [(f"{v:+.2f}" if signed else f"{v:.2f}") for v in r.values(classes)]
        if signed:
            cells = [f"**{c}**" if k in (len(classes), 2 * len(classes) + 1) else c for k, c in enumerate(cells)]
        if reference is not None:
            e_d = reference.get(r.label)
            cells.append(f"{e_d[0]:.2f} / {e_d[1]:.2f}" if e_d else "")
        out.append(f"| {r.label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def gt_counts(result: EvalResult, classes: list[str]) -> str:
    """One line with the ground-truth objects per region and class, saying why a class without
    objects in a region shows 0."""
    parts, empty = [], []
    for region, tag in REGIONS:
        per_class = result.regions.get(region)
        if per_class is None:
            continue
        n = {c: (per_class[c].num_gt if c in per_class else 0) for c in classes}
        parts.append(f"{tag} " + " / ".join(f"{abbreviate(c)} {n[c]}" for c in classes))
        empty += [f"{tag} {abbreviate(c)}" for c in classes if n[c] == 0]
    if not parts:
        return ""
    line = "Ground-truth objects in the validation split: " + "; ".join(parts) + "."
    if empty:
        line += (f" {', '.join(empty)}: no object of the class in the region, so AP is 0 for every "
                 "model (the official tool's convention), not a failure to detect.")
    return line


def fmt_duration(seconds: float) -> str:
    seconds = int(round(max(seconds, 0.0)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def all_finite(rows: list[ModelScores]) -> bool:
    return all(math.isfinite(v) for r in rows for reg in r.ap.values() for v in reg.values())


@dataclass
class ReportInputs:
    """Everything :func:`write_markdown_report` puts into ``report.md``."""

    title: str
    intro: str
    table_md: str
    notes: list[str]
    configs: dict[str, str]
    """model label -> resolved experiment config YAML (as stored in the run folder)."""
    curve_pngs: list[Path]
    bev_pngs: list[Path]
    timings: list[tuple[str, float]]
    """(stage, seconds)."""
    extra: list[str]
    """Further Markdown paragraphs (commands to go on with, the world's size, ...)."""


def write_markdown_report(path: Path, inp: ReportInputs) -> Path:
    rel = lambda p: Path(p).relative_to(path.parent).as_posix() if Path(p).is_relative_to(path.parent) else str(p)  # noqa: E731
    md = [f"# {inp.title}", "", inp.intro, "", "## Result", "",
          "3D AP|R11 (%) on the validation split, IoU Car 0.5 / Pedestrian 0.25 / Cyclist 0.25 "
          "(the View-of-Delft metric).", "", inp.table_md, ""]
    md += [f"- {n}" for n in inp.notes] + [""]
    if inp.curve_pngs:
        md += ["## Training curves", ""] + [f"![{Path(p).stem}]({rel(p)})" for p in inp.curve_pngs] + [""]
    if inp.bev_pngs:
        md += ["## Bird's-eye view of validation frames", "",
               "Radar points coloured by compensated radial velocity, LiDAR grey (the teacher's "
               "input only), boxes by class; predictions are drawn over the ground truth (thin dashed).",
               ""] + [f"![{Path(p).stem}]({rel(p)})" for p in inp.bev_pngs] + [""]
    md += inp.extra
    if inp.timings:
        md += ["## Time per stage", "", "| stage | time |", "|---|---|"]
        md += [f"| {name} | {fmt_duration(s)} |" for name, s in inp.timings] + [""]
    if inp.configs:
        md += ["## Configs used", ""]
        for label, text in inp.configs.items():
            md += [f"<details><summary>{label}</summary>", "", "```yaml", text.rstrip(), "```", "", "</details>", ""]
    write_text_atomic(path, "\n".join(md) + "\n", "report")
    return path
