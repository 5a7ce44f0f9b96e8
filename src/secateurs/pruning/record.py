"""The typed, versioned pruning record a manifest keeps: what was done to the base architecture,
replayed (:mod:`secateurs.pruning.history`) to rebuild a pruned model before its weights load.

:class:`ManifestPruning` holds one entry per *kind* of record, each its own dataclass, present
(not None) when the pruning produced it:

======================  =========================  ==============================================
JSON key                dataclass                  written by
======================  =========================  ==============================================
``rounds``              :class:`ChannelRounds`     every method: channels removed, per round
``oneshot``             :class:`OneShotPrune`      one-shot pruning (``secateurs prune``, the API)
``certificate``         :class:`Certificate`       PFP's per-layer error guarantee
``bias_fold``           :class:`BiasFold`          ``--fold-bias``
``compact_columns``     :class:`CompactColumns`    SPP (column-sparse layers as compact convs)
``diverse_groups``      :class:`DiverseGroups`     SG-CNN, Campfire kernel (grouped layers)
``spp``                 :class:`SPPRecord`         SPP's settings, state and compaction choices
``sgcnn``               :class:`SGCNNRecord`       SG-CNN's settings and groups
``taylor_gradual``      :class:`TaylorGradualRecord`  gradual Taylor's settings and steps
``campfire``            :class:`CampfireRecord`    Campfire's granularity (its form)
======================  =========================  ==============================================

On disk (``manifest.json``'s ``pruning``), version 2::

    {"version": 2, "method": "spp", "rounds": {"histories": [[[name, out, [idx]], ...], ...]},
     "compact_columns": {"layers": {"layer1.0.conv1": [0, 1, ...]}}, "spp": {...}}

every present kind under its key, as its dataclass's fields. Version 1 is the unversioned flat
dictionary each method wrote before this module (``rounds`` as a list, ``granularity`` and
``layers`` beside SPP's ``spp``, the one-shot settings at top level, and the very old
``{"history": [...]}``); :meth:`ManifestPruning.from_json` reads it too. A newer version is
refused; an unknown key is refused in version 2 and kept unread (``unread``) in version 1
(docs/decisions.md, "Unknown pruning record kinds").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from secateurs.errors import SecateursError

RECORD_VERSION = 2  # 1: the unversioned dictionaries written before this module


@dataclass
class ChannelRounds:
    """Channels removed: one Torch-Pruning history (``[layer, is_output, [indices]]`` items) per
    round, replayed in order (iterative pruning, or a run started from a pruned model)."""

    histories: list[list[list[Any]]] = field(default_factory=list)


@dataclass
class OneShotPrune:
    """How a one-shot method pruned: its parameters, the target and the cost ratio reached, the
    plans (channels removed per group, per step), how channels were chosen, groups kept whole."""

    method_params: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] | None = None  # {"kind": "macs", "ratio": 0.5}
    achieved: float = 1.0
    plans: list[dict[str, Any]] = field(default_factory=list)
    selection: str = "deterministic"
    protected: list[dict[str, str]] = field(default_factory=list)
    round_to: int | None = None  # the channel multiple the allocation settled on (None: unknown)


@dataclass
class Certificate:
    """PFP's certificate: one row per pruned layer (its error bound and sample sizes)."""

    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BiasFold:
    """The layers whose bias took removed channels' mean output, per pruning step."""

    steps: list[dict[str, list[str]]] = field(default_factory=list)


@dataclass
class CompactColumns:
    """SPP's compact convolutions: {layer: kept column indices (flattened (C_in, kh, kw))}."""

    layers: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class DiverseGroups:
    """Grouped layers (SG-CNN, Campfire kernel): {layer: its DiverseGroupConv2d record}."""

    layers: dict[str, Any] = field(default_factory=dict)


@dataclass
class SPPRecord:
    """SPP: the granularity, the callback's state (settings, probabilities), and the
    compaction's per-layer choices."""

    granularity: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SGCNNRecord:
    """SG-CNN: the callback's record (settings, stages, groups)."""

    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaylorGradualRecord:
    """Gradual Taylor: the callback's record (settings, pruning steps)."""

    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class CampfireRecord:
    """Campfire: the granularity, which sets the form its layers were compacted to (window
    layers stay dense, kernel layers may be grouped, filters are removed)."""

    granularity: str | None = None


KINDS: dict[str, type] = {
    "rounds": ChannelRounds,
    "oneshot": OneShotPrune,
    "certificate": Certificate,
    "bias_fold": BiasFold,
    "compact_columns": CompactColumns,
    "diverse_groups": DiverseGroups,
    "spp": SPPRecord,
    "sgcnn": SGCNNRecord,
    "taylor_gradual": TaylorGradualRecord,
    "campfire": CampfireRecord,
}
ONESHOT_KEYS = ("method_params", "target", "achieved", "plans", "selection", "protected")
# version 1 keys read into a kind (the rest of a version-1 record is kept unread)
V1_KEYS = {"method", "rounds", "history", "granularity", "layers", *ONESHOT_KEYS, *KINDS}


@dataclass
class ManifestPruning:
    """A manifest's pruning record: the method, then one entry per kind of record it produced
    (None: not produced). ``unread``: keys of a version-1 record no kind reads, kept as they were.
    """

    method: str | None = None
    rounds: ChannelRounds = field(default_factory=ChannelRounds)
    oneshot: OneShotPrune | None = None
    certificate: Certificate | None = None
    bias_fold: BiasFold | None = None
    compact_columns: CompactColumns | None = None
    diverse_groups: DiverseGroups | None = None
    spp: SPPRecord | None = None
    sgcnn: SGCNNRecord | None = None
    taylor_gradual: TaylorGradualRecord | None = None
    campfire: CampfireRecord | None = None
    unread: dict[str, Any] = field(default_factory=dict)
    version: int = RECORD_VERSION

    def after(self, previous: ManifestPruning | None) -> ManifestPruning:
        """This record as applied to a model already pruned as ``previous`` says: its rounds
        follow the earlier ones (nothing else of ``previous`` carries over)."""
        earlier = previous.rounds.histories if previous is not None else []
        return replace(self, rounds=ChannelRounds([*earlier, *self.rounds.histories]))

    def certificate_rows(self) -> list[dict[str, Any]]:
        """PFP's certificate rows (empty without one)."""
        return self.certificate.rows if self.certificate is not None else []

    def to_json(self) -> dict[str, Any]:
        """The version-2 JSON form: version, method, and every present kind under its key."""
        data: dict[str, Any] = {"version": RECORD_VERSION, "method": self.method}
        for key in KINDS:
            entry = getattr(self, key)
            if entry is not None:
                data[key] = asdict(entry)
        if self.unread:
            data["unread"] = dict(self.unread)
        return data

    @classmethod
    def from_json(cls, data: Any, source: str = "manifest") -> ManifestPruning:
        """A record from a manifest's ``pruning``: version 2, or any version-1 shape."""
        if not isinstance(data, dict):
            raise SecateursError(f"{source}: the pruning record is not a JSON object")
        version = data.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise SecateursError(f"{source}: the pruning record's version {version!r} is invalid")
        if version > RECORD_VERSION:
            raise SecateursError(
                f"{source}: pruning record version {version} was written by a newer secateurs "
                f"(this one reads up to {RECORD_VERSION}); upgrade secateurs to load it"
            )
        try:
            record = _from_v2(data) if version == 2 else _from_v1(data)
            _check(record)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise SecateursError(f"{source}: not a pruning record ({error})") from None
        return record


def _build(kind: type, values: Any) -> Any:
    """A kind's dataclass from its JSON object; unknown fields refused."""
    if not isinstance(values, dict):
        raise TypeError(f"{kind.__name__} must be an object, not {type(values).__name__}")
    unknown = set(values) - {f.name for f in fields(kind)}
    if unknown:
        raise ValueError(f"unknown {kind.__name__} fields {sorted(unknown)}")
    return kind(**values)


def _from_v2(data: dict[str, Any]) -> ManifestPruning:
    unknown = set(data) - {"version", "method", "unread", *KINDS}
    if unknown:
        raise ValueError(f"unknown record kinds {sorted(unknown)}")
    kinds = {key: _build(kind, data[key]) for key, kind in KINDS.items() if key in data}
    return ManifestPruning(
        method=data.get("method"), unread=dict(data.get("unread") or {}), **kinds
    )


def _from_v1(data: dict[str, Any]) -> ManifestPruning:
    """The flat, unversioned record: replay used ``rounds``, else ``[history]``."""
    method = data.get("method")
    histories = data.get("rounds") or ([data["history"]] if data.get("history") else [])
    record = ManifestPruning(method=method, rounds=ChannelRounds(list(histories)))
    if any(key in data for key in ONESHOT_KEYS):
        record.oneshot = OneShotPrune(**{k: data[k] for k in ONESHOT_KEYS if k in data})
    singles = {
        "certificate": (Certificate, "rows"),
        "bias_fold": (BiasFold, "steps"),
        "compact_columns": (CompactColumns, "layers"),
        "diverse_groups": (DiverseGroups, "layers"),
        "sgcnn": (SGCNNRecord, "state"),
        "taylor_gradual": (TaylorGradualRecord, "state"),
    }
    for key, (kind, name) in singles.items():
        if key in data:
            setattr(record, key, kind(**{name: data[key]}))
    read = set(V1_KEYS) - {"granularity", "layers"}
    if method == "spp" or "spp" in data:
        record.spp = SPPRecord(
            data.get("granularity"), data.get("spp") or {}, data.get("layers", [])
        )
        read |= {"granularity", "layers"}
    elif method == "campfire":
        record.campfire = CampfireRecord(data.get("granularity"))
        read.add("granularity")
    record.unread = {key: value for key, value in data.items() if key not in read}
    return record


def _check(record: ManifestPruning) -> None:
    """The shapes replay relies on: rounds of [name, out, indices] items, column indices."""
    if record.method is not None and not isinstance(record.method, str):
        raise TypeError(f"method must be a name, not {record.method!r}")
    if not isinstance(record.rounds.histories, list):
        raise TypeError("rounds must be a list of histories")
    for history in record.rounds.histories:
        for item in history:
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], list)):
                raise ValueError(
                    f"a round's item must be [layer, is_output, indices], not {item!r}"
                )
    if record.compact_columns is not None and not isinstance(record.compact_columns.layers, dict):
        raise TypeError("compact_columns must map layers to column indices")
    if record.diverse_groups is not None and not isinstance(record.diverse_groups.layers, dict):
        raise TypeError("diverse_groups must map layers to their records")
