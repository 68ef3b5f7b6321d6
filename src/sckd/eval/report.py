"""Text table of an :class:`EvalResult`, laid out like the VoD papers' tables.

One column group per region (entire annotated area, driving corridor, ...), each with the
classes and their mean; one row per kind (3D AP, BEV AP, AOS), R11 first and R40 if asked.
"""

from __future__ import annotations

from sckd.eval.result import EvalResult, abbreviate, region_title

_ROWS = (("3d", "3D AP"), ("bev", "BEV AP"), ("aos", "AOS"))


def format_table(result: EvalResult, r40: bool = False) -> str:
    classes = result.classes
    cols = [abbreviate(c)[:7] for c in classes] + ["mAP"]
    group_w = 8 * len(cols)
    label_w = 14
    lines = []
    head1 = " " * label_w + "".join(f" | {region_title(r):<{group_w - 1}}" for r in result.regions)
    head2 = " " * label_w + "".join(" | " + " ".join(f"{c:>7}" for c in cols) for _ in result.regions)
    lines += [head1.rstrip(), head2.rstrip(), "-" * len(head2)]
    for suffix, use40 in (("R11", False), ("R40", True)) if r40 else (("R11", False),):
        for kind, name in _ROWS:
            cells = []
            for region in result.regions:
                vals = [result.ap(region, c, kind, use40) for c in classes]
                vals.append(result.mean_ap(region, kind, use40))
                cells.append(" | " + " ".join(f"{v:7.2f}" for v in vals))
            lines.append(f"{name + ' ' + suffix:<{label_w}}" + "".join(cells))
    notes = [f"{result.num_frames} frames, {result.num_detections} detections"]
    if result.missing_predictions:
        m = result.missing_predictions
        notes.append(f"{len(m)} frame(s) had no prediction file and count as 'no detections' "
                     f"(the official tool would drop them), e.g. {', '.join(m[:3])}")
    return "\n".join(lines + notes)
