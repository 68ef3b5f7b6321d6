"""The table configs of ``sckd reproduce`` (``configs/reproduce/<table>.yaml``): which jobs a
table trains, on how many splits or seeds, which columns and gain rows it shows, and which
teachers' pseudo-labels it scores."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sckd.config import CONFIG_ROOT, from_dict, load_yaml_tree
from sckd.errors import SckdError
from sckd.report.folds import FoldColumn

TABLES = tuple(sorted(p.stem for p in (CONFIG_ROOT / "reproduce").glob("*.yaml")))  # one per config


@dataclass
class JobSpec:
    key: str
    label: str
    experiment: str
    """Config stem under ``experiments/<family>/``."""
    teacher: str | None = None
    init_from: str | None = None
    """Key of an earlier job whose trained weights this job starts from (``train.init_from``)."""
    reference: list[float] | None = None
    """The paper's VoD val mAP (EAA, DC)."""
    overrides: list[str] = field(default_factory=list)
    sigma_from_teacher: bool = False
    """With ``teacher``: the student's ``distill.ssod.sigma`` is not its config's but, per class,
    just below the threshold with the highest recall at which the teacher's pseudo-labels on the
    train frames whose labels it trained on keep ``pseudo_labels.min_precision`` (its pseudo-label
    stage on the same split, :func:`sckd.distill.pl_quality.best_recall_any_sigma`): chosen on
    train frames only, for the teacher the student actually reads."""


@dataclass
class FamilyRuns:
    """How a study repeats on one data family (``families:`` of a table config)."""

    folds: int = 1
    fold_key: str = ""
    """Splits (``dataset.astyx.fold``) or seeds (``train.seed``), set to 0 .. folds-1."""
    columns: list[FoldColumn] = field(default_factory=list)


@dataclass
class PseudoLabelSpec:
    """Score some teachers' pseudo-labels on their train frames (``sckd pseudo-labels``)."""

    jobs: list[str] = field(default_factory=list)
    """Job keys of the teachers."""
    sigma: float = 0.3
    """The sigma their students use (``distill.ssod.sigma``), the table's first two columns."""
    class_name: str = "Car"
    min_precision: float = 0.6
    """The table's last column: the best recall at a precision of at least this."""
    sigmas: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7])
    split: str = "train"


@dataclass
class TableSpec:
    title: str
    jobs: list[JobSpec]
    gains: list[list[str]] = field(default_factory=list)
    """Pairs ``[a, b]``: a row ``a - b`` under the table."""
    family: str = ""
    """Experiment family the table needs (``astyx``); empty: the data decides."""
    folds: int = 1
    """Run every job once per split; the table shows mean +- std over them."""
    fold_key: str = ""
    """The config key that selects the split (``dataset.astyx.fold``), set to 0 .. folds-1."""
    columns: list[FoldColumn] = field(default_factory=list)
    """Columns of a fold table (a metric key of the result JSON each); empty: the paper's
    EAA / DC layout."""
    figures: list[str] = field(default_factory=list)
    """Job keys (the first a LiDAR model) whose training curves and split-0 bird's-eye panels
    go into OUT (``curves_*.png``, ``bev_<frame>.png``)."""
    curve_metrics: list[str] = field(default_factory=lambda: ["entire_area/mAP_3d", "roi/mAP_3d"])
    bev_frames: int = 3
    pseudo_labels: PseudoLabelSpec | None = None
    """Teachers whose pseudo-labels are scored per split, in a table under the first."""
    families: dict[str, FamilyRuns] = field(default_factory=dict)
    """Per data family: its folds, fold key and columns (replacing the ones above); a table
    with ``families`` runs on those families only."""

    def for_family(self, family: str, table: str) -> "TableSpec":
        if not self.families:
            return self
        if family not in self.families:
            raise SckdError(f"reproduce {table}: runs on {' or '.join(sorted(self.families))} data "
                            f"(--data), got {family}")
        f = self.families[family]
        out = replace(self, folds=f.folds, fold_key=f.fold_key, columns=list(f.columns) or self.columns)
        out.validate(f"reproduce.families.{family}")
        return out

    def validate(self, path: str) -> None:
        if self.folds < 1 or (self.folds > 1 and not self.fold_key):
            raise SckdError(f"config key '{path}.fold_key': needed to run {self.folds} folds")
        keys = {j.key for j in self.jobs}
        for i, j in enumerate(self.jobs):
            earlier = [e.key for e in self.jobs[:i]]
            if j.sigma_from_teacher and (j.teacher is None or self.pseudo_labels is None
                                         or j.teacher not in self.pseudo_labels.jobs):
                raise SckdError(f"config key '{path}.jobs.{j.key}.sigma_from_teacher': needs a teacher job "
                                f"listed in pseudo_labels.jobs (teacher: {j.teacher})")
            if j.init_from is not None and j.init_from not in earlier:
                raise SckdError(f"config key '{path}.jobs.{j.key}.init_from': '{j.init_from}' must name a job "
                                f"listed before it ({', '.join(earlier) or 'none'})")
        if not set(self.figures) <= keys:
            raise SckdError(f"config key '{path}.figures': {self.figures} must name job keys of {sorted(keys)}")
        for pair in self.gains:
            if len(pair) != 2 or not set(pair) <= keys:
                raise SckdError(f"config key '{path}.gains': {pair} must name two job keys of {sorted(keys)}")
        pl = self.pseudo_labels
        if pl is not None:
            if not set(pl.jobs) <= keys:
                raise SckdError(f"config key '{path}.pseudo_labels.jobs': {pl.jobs} must name job keys of "
                                f"{sorted(keys)}")
            if pl.sigma not in pl.sigmas:
                raise SckdError(f"config key '{path}.pseudo_labels.sigma': {pl.sigma} must be one of "
                                f"pseudo_labels.sigmas {pl.sigmas}")


def load_table(name: str) -> TableSpec:
    if name not in TABLES:
        raise SckdError(f"{name}: unknown table (one of {', '.join(TABLES)})")
    raw = load_yaml_tree(f"reproduce/{name}.yaml")
    if "reproduce" not in raw:
        raise SckdError(f"reproduce/{name}.yaml: config has no 'reproduce' section")
    spec = from_dict(TableSpec, raw["reproduce"], "reproduce")
    try:
        spec.validate("reproduce")
    except SckdError as e:
        raise SckdError(f"reproduce/{name}.yaml: {e}") from None
    return spec
