"""The typed pruning record (secateurs.pruning.record): every manifest shape saved by the code
before it (tests/data/manifests, made by make_fixtures.py) reloads to the same outputs, the
versioned form round-trips, a newer version and unknown kinds are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from secateurs.errors import SecateursError
from secateurs.pruning.record import (
    KINDS,
    RECORD_VERSION,
    ChannelRounds,
    CompactColumns,
    ManifestPruning,
    SPPRecord,
)
from secateurs.store import MANIFEST_FILE, load_model, read_manifest

FIXTURES = Path(__file__).parent / "data" / "manifests"
KIND_DIRS = sorted(p.parent.name for p in FIXTURES.glob("*/manifest.json"))
# the kind each fixture exists for: its typed record must hold it
HOLDS = {
    "rounds": "oneshot",
    "history": "rounds",
    "bias_fold": "bias_fold",
    "certificate": "certificate",
    "compact_columns": "compact_columns",
    "spp": "spp",
    "diverse_groups": "diverse_groups",
    "sgcnn": "sgcnn",
    "taylor_gradual": "taylor_gradual",
    "campfire_window": "campfire",
    "campfire_kernel": "diverse_groups",
    "campfire_filter": "campfire",
}


def test_every_kind_has_a_fixture():
    assert set(HOLDS) <= set(KIND_DIRS)
    covered = {HOLDS[name] for name in KIND_DIRS if name in HOLDS}
    assert set(KINDS) == covered | {"rounds"}


@pytest.mark.parametrize("name", KIND_DIRS)
def test_old_manifest_reloads_to_the_same_outputs(name):
    model, manifest = load_model(FIXTURES / name)
    saved = load_file(FIXTURES / name / "logits.safetensors")
    with torch.no_grad():
        logits = model(saved["input"])
    assert (logits - saved["logits"]).abs().max().item() <= 1e-5
    assert isinstance(manifest.pruning, ManifestPruning)
    assert getattr(manifest.pruning, HOLDS.get(name, "rounds")) is not None
    assert manifest.pruning.rounds.histories  # every fixture removed channels
    assert not manifest.pruning.unread  # every key of the old shapes is read


def test_legacy_history_is_read_as_one_round():
    old = json.loads((FIXTURES / "history" / MANIFEST_FILE).read_text())["pruning"]
    record = read_manifest(FIXTURES / "history").pruning
    assert record.rounds.histories == [old["history"]]
    assert record == read_manifest(FIXTURES / "history").pruning  # deterministic


@pytest.mark.parametrize("name", KIND_DIRS)
def test_versioned_form_round_trips(name):
    record = read_manifest(FIXTURES / name).pruning
    data = json.loads(json.dumps(record.to_json()))
    assert data["version"] == RECORD_VERSION
    assert ManifestPruning.from_json(data) == record


def test_resaved_old_model_reloads_in_the_new_form(tmp_path):
    shutil.copytree(FIXTURES / "compact_columns", tmp_path / "m")
    model, manifest = load_model(tmp_path / "m")
    from secateurs.store import save_model

    save_model(model, tmp_path / "again", manifest)
    written = json.loads((tmp_path / "again" / MANIFEST_FILE).read_text())["pruning"]
    assert written["version"] == RECORD_VERSION
    assert set(written["compact_columns"]) == {"layers"}
    again, _ = load_model(tmp_path / "again")
    x = torch.randn(2, *manifest.input_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_new_record_round_trips():
    record = ManifestPruning(
        method="spp",
        rounds=ChannelRounds([[["conv1", True, [0, 3]]], []]),
        compact_columns=CompactColumns({"layer1.0.conv1": [0, 1, 5]}),
        spp=SPPRecord("column", {"params": {"A": 0.05}}, [{"name": "layer1.0.conv1"}]),
    )
    data = json.loads(json.dumps(record.to_json()))
    assert set(data) == {"version", "method", "rounds", "compact_columns", "spp"}
    assert ManifestPruning.from_json(data) == record


def test_a_newer_version_is_refused():
    data = {**ManifestPruning(method="l1").to_json(), "version": RECORD_VERSION + 1}
    with pytest.raises(SecateursError, match="newer secateurs") as error:
        ManifestPruning.from_json(data, "m/manifest.json")
    assert "\n" not in str(error.value)


def test_a_newer_version_on_disk_is_refused(tmp_path):
    shutil.copytree(FIXTURES / "rounds", tmp_path / "m")
    path = tmp_path / "m" / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["pruning"] = {"version": RECORD_VERSION + 1, "method": "l1"}
    path.write_text(json.dumps(manifest))
    with pytest.raises(SecateursError, match="newer secateurs"):
        load_model(tmp_path / "m")


def test_an_unknown_kind_is_refused_in_the_versioned_form():
    data = {**ManifestPruning(method="l1").to_json(), "wavelets": {"layers": {}}}
    with pytest.raises(SecateursError, match="unknown record kinds"):
        ManifestPruning.from_json(data)
    bad_field = {**ManifestPruning(method="l1").to_json(), "bias_fold": {"stepz": []}}
    with pytest.raises(SecateursError, match="unknown BiasFold fields"):
        ManifestPruning.from_json(bad_field)


def test_an_unknown_key_of_an_old_record_is_kept_unread():
    old = json.loads((FIXTURES / "rounds" / MANIFEST_FILE).read_text())["pruning"]
    record = ManifestPruning.from_json({**old, "notes": "kept"})
    assert record.unread == {"notes": "kept"}
    assert ManifestPruning.from_json(record.to_json()).unread == {"notes": "kept"}


def test_malformed_rounds_are_refused():
    with pytest.raises(SecateursError, match="not a pruning record"):
        ManifestPruning.from_json({"rounds": [[["conv1", True]]]})
