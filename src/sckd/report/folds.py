"""Tables over several splits (folds): each cell the mean +- sample std of one metric.

A column names a key of the metric's result JSON (:meth:`EvalResult.to_official_json`), e.g.
region ``entire_area``, key ``Car_3d_all``; ``iou`` set means the same key from an evaluation
at that IoU threshold instead of the config's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sckd.eval.result import EvalResult


@dataclass
class FoldColumn:
    label: str
    region: str
    key: str
    iou: float | None = None
    """Evaluate again with every class at this 3D / BEV IoU threshold (e.g. 0.7 for Car)."""

    @property
    def result_tag(self) -> str:
        """Suffix of the job key under which the fold results hold this column's evaluation."""
        return "" if self.iou is None else f"@iou{self.iou:g}"


@dataclass
class FoldRow:
    key: str
    values: list[list[float]]
    """Per column, the value of every fold that has it."""
    signed: bool = False


def _value(result: EvalResult | None, col: FoldColumn) -> float | None:
    return None if result is None else result.value(col.region, col.key)


def mean_std_rows(fold_results: list[dict[str, EvalResult]], keys: list[str], columns: list[FoldColumn],
                  gains: list[list[str]] = ()) -> list[FoldRow]:
    """Rows for ``keys`` (job keys) and gain rows ``a - b`` (paired per fold)."""
    rows = []
    for key in keys:
        vals = [[v for res in fold_results if (v := _value(res.get(key + c.result_tag), c)) is not None]
                for c in columns]
        rows.append(FoldRow(key, vals))
    for a, b in gains:
        vals = []
        for c in columns:
            diffs = []
            for res in fold_results:
                va, vb = _value(res.get(a + c.result_tag), c), _value(res.get(b + c.result_tag), c)
                if va is not None and vb is not None:
                    diffs.append(va - vb)
            vals.append(diffs)
        rows.append(FoldRow(f"{a} - {b}", vals, signed=True))
    return rows


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value, NaN for none)."""
    if not values:
        return math.nan, math.nan
    m = sum(values) / len(values)
    if len(values) == 1:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def cell(values: list[float], folds: int, signed: bool = False) -> str:
    if not values:
        return "-"
    m, s = mean_std(values)
    text = f"{m:+.2f} ± {s:.2f}" if signed else f"{m:.2f} ± {s:.2f}"
    return text if len(values) == folds else f"{text} ({len(values)}/{folds})"


def format_fold_tables(rows: list[FoldRow], labels: dict[str, str], columns: list[FoldColumn],
                       folds: int) -> tuple[str, str]:
    """(fixed-width text, Markdown). A cell from fewer folds than the rest says how many."""

    def label(r: FoldRow) -> str:
        if r.signed:
            a, b = r.key.split(" - ")
            return f"{labels.get(a, a)} - {labels.get(b, b)}"
        return labels.get(r.key, r.key)

    cells = [[cell(v, folds, r.signed) for v in r.values] for r in rows]
    names = [label(r) for r in rows]
    md = ["| model | " + " | ".join(c.label for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    md += [f"| {n} | " + " | ".join(cs) + " |" for n, cs in zip(names, cells)]
    lw = max(len(n) for n in names + ["model"]) + 1
    widths = [max(len(c.label), *(len(cs[i]) for cs in cells)) + 2 for i, c in enumerate(columns)]
    text = [f"{'model':<{lw}}" + "".join(f"{c.label:>{w}}" for c, w in zip(columns, widths))]
    text.append("-" * len(text[0]))
    ruled = False
    for n, cs, r in zip(names, cells, rows):
        if r.signed and not ruled:
            text.append("-" * len(text[0]))
            ruled = True
        text.append(f"{n:<{lw}}" + "".join(f"{c:>{w}}" for c, w in zip(cs, widths)))
    return "\n".join(text), "\n".join(md)
