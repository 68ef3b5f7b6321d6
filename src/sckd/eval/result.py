"""What the metric returns: AP per region, class and kind, at R11 and R40, in percent."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sckd.errors import SckdError

KINDS = ("3d", "bev", "aos", "2d")
"""3D AP, BEV AP, average orientation similarity (matched on 2D boxes), 2D image-box AP."""

REGION_TITLES = {"entire_area": "Entire annotated area", "roi": "Driving corridor", "easy": "Easy",
                 "moderate": "Moderate", "hard": "Hard"}
CLASS_ABBREVIATIONS = {"Pedestrian": "Ped", "Cyclist": "Cyc"}
"""Short class names for table columns (the VoD papers' ``Ped`` / ``Cyc``)."""


def abbreviate(cls: str) -> str:
    return CLASS_ABBREVIATIONS.get(cls, cls)


def region_title(region: str) -> str:
    if region.startswith("range_"):
        lo, _, hi = region[6:].partition("-")
        return f"Range {lo}-{hi} m" if hi else f"Range <= {lo} m"
    return REGION_TITLES.get(region, region)


@dataclass
class ClassAP:
    """One class in one region: AP by kind (``KINDS``) at R11 and R40, percent."""

    r11: dict[str, float]
    r40: dict[str, float]
    num_gt: int
    """GT objects that count (not ignored) in this region."""


@dataclass
class EvalResult:
    classes: list[str]
    regions: dict[str, dict[str, ClassAP]]
    """region name (``entire_area``, ``roi``, ``range_<r>``) -> class -> :class:`ClassAP`."""
    num_frames: int
    num_detections: int
    missing_predictions: list[str] = field(default_factory=list)
    """Frames of the split without a prediction (evaluated as having no detections)."""

    def ap(self, region: str, cls: str, kind: str = "3d", r40: bool = False) -> float:
        c = self.regions[region][cls]
        return (c.r40 if r40 else c.r11)[kind]

    def mean_ap(self, region: str, kind: str = "3d", r40: bool = False) -> float:
        """Mean over the classes (mAP when ``kind='3d'``)."""
        vals = [self.ap(region, c, kind, r40) for c in self.classes]
        return sum(vals) / len(vals)

    @property
    def mAP(self) -> float:  # noqa: N802 - the name papers use
        """Headline number: mean 3D AP|R11 over the classes in the entire annotated area
        (or the first region evaluated)."""
        region = "entire_area" if "entire_area" in self.regions else next(iter(self.regions))
        return self.mean_ap(region)

    def to_official_json(self) -> dict:
        """The official tool's layout (``{'entire_area': {'Car_aos_all': .., 'Car_3d_all': ..,
        'Car_bev_all': ..}, 'roi': {...}}``, R11 in percent) plus extra keys: ``<Class>_2d_all``,
        ``<key>_R40`` for every kind, ``mAP_<kind>`` / ``mAP_<kind>_R40`` per region, and a
        ``meta`` entry (frames, detections, GT counts, frames without predictions)."""
        out: dict = {}
        for region, per_class in self.regions.items():
            d: dict[str, float] = {}
            for cls in self.classes:
                for kind in ("aos", "3d", "bev", "2d"):
                    d[f"{cls}_{kind}_all"] = per_class[cls].r11[kind]
            for cls in self.classes:
                for kind in ("aos", "3d", "bev", "2d"):
                    d[f"{cls}_{kind}_all_R40"] = per_class[cls].r40[kind]
            for kind in ("3d", "bev", "aos", "2d"):
                d[f"mAP_{kind}"] = self.mean_ap(region, kind)
                d[f"mAP_{kind}_R40"] = self.mean_ap(region, kind, r40=True)
            out[region] = d
        out["meta"] = {
            "frames": self.num_frames,
            "detections": self.num_detections,
            "frames_without_predictions": len(self.missing_predictions),
            "missing_predictions": list(self.missing_predictions),
            "num_gt": {r: {c: pc[c].num_gt for c in self.classes} for r, pc in self.regions.items()},
        }
        return out

    def value(self, region: str, key: str) -> float | None:
        """One entry of :meth:`to_official_json` by its key (``Car_3d_all``, ``mAP_bev_R40``,
        ...); None when the region or key is not there."""
        v = self.to_official_json().get(region, {}).get(key)
        return float(v) if isinstance(v, (int, float)) else None

    @classmethod
    def from_official_json(cls, data: dict, where: str = "result") -> EvalResult:
        """Inverse of :meth:`to_official_json` (``where`` names the file in errors)."""
        try:
            meta = data["meta"]
            regions: dict[str, dict[str, ClassAP]] = {}
            classes: list[str] = []
            for region, d in data.items():
                if region == "meta":
                    continue
                if not classes:
                    classes = [k[: -len("_3d_all")] for k in d if k.endswith("_3d_all") and not k.startswith("mAP_")]
                regions[region] = {
                    c: ClassAP(r11={k: float(d[f"{c}_{k}_all"]) for k in KINDS},
                               r40={k: float(d[f"{c}_{k}_all_R40"]) for k in KINDS},
                               num_gt=int(meta["num_gt"][region][c]))
                    for c in classes}
            return cls(classes, regions, int(meta["frames"]), int(meta["detections"]),
                       [str(f) for f in meta.get("missing_predictions", [])])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SckdError(f"{where}: not a metric result written by sckd (missing or bad entry {e})") from None

    def flat_metrics(self) -> dict[str, float]:
        """``{'<region>/mAP_3d': .., '<region>/<Class>_3d': .., ...}`` (R11, plus ``_R40``) for
        logging and checkpoint selection; NaN never appears (it becomes 0)."""
        out: dict[str, float] = {}
        for region in self.regions:
            for kind in ("3d", "bev", "aos"):
                for r40 in (False, True):
                    sfx = "_R40" if r40 else ""
                    out[f"{region}/mAP_{kind}{sfx}"] = self.mean_ap(region, kind, r40)
                    for cls in self.classes:
                        out[f"{region}/{cls}_{kind}{sfx}"] = self.ap(region, cls, kind, r40)
        return {k: (0.0 if math.isnan(v) else v) for k, v in out.items()}
