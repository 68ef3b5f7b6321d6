"""The table of a teacher's pseudo-labels over several splits: precision and recall of one class
at the sigma its student uses, and the best recall any sigma reaches at a precision floor --
whether the teacher can teach (the rows of ``sckd pseudo-labels``, mean +- std over splits)."""

from __future__ import annotations

import math

from sckd.report.folds import cell


def best_recall(rows: list[dict], c: int, min_precision: float) -> float:
    """The highest recall of class ``c`` over the sigmas whose precision is at least
    ``min_precision`` (0 where none is)."""
    ok = [r["recall"][c] for r in rows if not math.isnan(r["precision"][c]) and r["precision"][c] >= min_precision]
    return max(ok, default=0.0)


def at_sigma(rows: list[dict], sigma: float) -> dict:
    for r in rows:
        if abs(r["sigma"] - sigma) < 1e-9:
            return r
    raise KeyError(f"sigma {sigma} was not measured (have {[r['sigma'] for r in rows]})")


def lidar_seen(result: dict, class_name: str, sigma: float) -> tuple[float, float] | None:
    """(share of the labeled objects with no LiDAR point inside their box, recall at ``sigma``
    over the others) from a pseudo-label stage's ``by_points`` (None where it was not measured,
    or at another sigma)."""
    rows = (result.get("by_points") or {}).get(class_name, {}).get("lidar")
    if not rows or result.get("errors_sigma") is None or abs(result["errors_sigma"] - sigma) > 1e-9:
        return None
    none = [r for r in rows if r["points"][0] == 0]
    seen = [r for r in rows if r["points"][0] > 0 and r["objects"]]
    n = sum(r["objects"] for r in rows)
    n_seen = sum(r["objects"] for r in seen)
    if not n:
        return None
    recall = sum(r["recall"] * r["objects"] for r in seen) / n_seen if n_seen else math.nan
    return sum(r["objects"] for r in none) / n, recall


def format_pseudo_tables(per_fold: list[dict[str, dict]], keys: list[str], labels: dict[str, str],
                         class_name: str, sigma: float, min_precision: float, folds: int) -> tuple[str, str]:
    """(text, Markdown). ``per_fold``: per split, job key -> the JSON of a pseudo-label stage
    (``classes``, ``rows`` as :func:`sckd.distill.pl_quality.precision_recall` gives; where it has
    them, ``best_recall`` adds two columns -- the recall, and the sigma at that precision on the
    frames whose labels the teacher read (``sigma_choice``, where scored) -- and ``by_points`` one)."""
    head = [f"precision @{sigma:g}", f"recall @{sigma:g}", f"best recall, precision >= {min_precision:g}",
            "best recall, any threshold", f"sigma for precision >= {min_precision:g}",
            f"recall @{sigma:g}, >= 1 LiDAR point in the box"]
    body = []
    unseen: dict[int, float] = {}  # split -> share of the labeled objects no LiDAR point reaches
    for key in keys:
        vals: list[list[float]] = [[] for _ in head]
        for i, fold in enumerate(per_fold):
            if key not in fold:
                continue
            res = fold[key]
            c = res["classes"].index(class_name)
            r = at_sigma(res["rows"], sigma)
            seen = lidar_seen(res, class_name, sigma)
            if seen is not None:
                unseen[i] = seen[0]
            exact = (res.get("best_recall") or [{}] * (c + 1))[c]
            exact_ok = exact.get("min_precision") is not None and abs(exact["min_precision"] - min_precision) < 1e-9
            # the sigma a student chooses: on the frames whose labels the teacher read (all of a
            # fully labeled teacher's, where results before `sigma_choice` hold the same number)
            chosen = ((res.get("sigma_choice") or {}).get("best_recall") or [exact] * (c + 1))[c]
            chosen_ok = chosen.get("min_precision") is not None and abs(chosen["min_precision"] - min_precision) < 1e-9
            for v, x in zip(vals, (r["precision"][c], r["recall"][c], best_recall(res["rows"], c, min_precision),
                                   exact["recall"] if exact_ok else math.nan,
                                   chosen.get("lowest_score", math.nan) if chosen_ok else math.nan,
                                   math.nan if seen is None else seen[1])):
                if not math.isnan(x):
                    v.append(x)
        if any(vals):
            body.append((labels.get(key, key), [cell(v, folds) for v in vals]))
    if not body:
        return "", ""
    # the last three columns only once some result holds them (scored since 2026-12-07); the
    # sigma column is that of a student with `sigma_from_teacher` (reproduce tables)
    shown = [i for i in range(len(head)) if i < 3 or any(cs[i] != "-" for _, cs in body)]
    head = [head[i] for i in shown]
    body = [(n, [cs[i] for i in shown]) for n, cs in body]
    title = f"{class_name} pseudo-labels of the teachers on their own train frames"
    md = [f"{title}:", "", "| teacher | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    md += [f"| {n} | " + " | ".join(cs) + " |" for n, cs in body]
    lw = max(len(n) for n, _ in body + [("teacher", [])]) + 1
    widths = [max(len(h), *(len(cs[i]) for _, cs in body)) + 2 for i, h in enumerate(head)]
    text = [title, "", f"{'teacher':<{lw}}" + "".join(f"{h:>{w}}" for h, w in zip(head, widths))]
    text.append("-" * len(text[-1]))
    text += [f"{n:<{lw}}" + "".join(f"{c:>{w}}" for c, w in zip(cs, widths)) for n, cs in body]
    if unseen:
        note = (f"{cell(list(unseen.values()), folds)} of the labeled {class_name} objects of these train frames have "
                "no LiDAR point inside their box (a teacher can find them by radar only)")
        md += ["", note + "."]
        text += ["", note]
    return "\n".join(text), "\n".join(md)
