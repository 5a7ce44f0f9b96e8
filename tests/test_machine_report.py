"""Every report names the machine it was timed on (from a scripted /proc/cpuinfo), and a report
whose pruned model is slower than the unpruned one says so at the top of report.md and in a
warning at the end of the run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from secateurs.measurement.machine import describe, machine_info, read_cpuinfo
from secateurs.report import Cost, Latency, Machine, PruningRecord, Report, RunSettings, markdown
from secateurs.report.markdown import slower_note

EXAMPLES = Path(__file__).parent / "data" / "reports"
XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 avx avx2 fma avx512f avx512dq avx512_vnni avx_vnni amx_bf16 amx_tile
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu avx2
"""
LAPTOP = "model name\t: AMD Ryzen 7 5800U\nflags\t\t: fpu sse avx avx2 fma\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes\nCPU implementer\t: 0x41\n"


def test_cpuinfo_is_read_for_the_model_name_and_the_flags_that_matter() -> None:
    assert read_cpuinfo(XEON) == (
        "Intel(R) Xeon(R) Platinum 8480+",
        ["AVX2", "AVX-512 F", "AVX-512 VNNI", "AMX"],
    )
    assert read_cpuinfo(LAPTOP) == ("AMD Ryzen 7 5800U", ["AVX2"])
    assert read_cpuinfo(ARM) == (None, [])
    assert read_cpuinfo("") == (None, None)


def test_machine_info_and_its_line() -> None:
    info = machine_info(2, cpuinfo=LAPTOP)
    assert info["cpu"] == "AMD Ryzen 7 5800U" and info["isa"] == ["AVX2"]
    assert info["threads"] == 2 and info["torch"]  # torch is installed: its version is named
    info.update(torch="2.4.0", onnxruntime="1.19.2")
    assert describe(info) == (
        "Machine: AMD Ryzen 7 5800U (AVX2; no AVX-512 F, AVX-512 VNNI, AMX); torch 2.4.0, "
        "onnxruntime 1.19.2; 2 threads."
    )
    info.update(isa=None, onnxruntime=None)
    assert describe(info) == (
        "Machine: AMD Ryzen 7 5800U (instruction sets not known); torch 2.4.0; 2 threads."
    )
    assert describe({**info, "threads": 1}).endswith("; 1 thread.")
    assert machine_info(1, cpuinfo="")["cpu"]  # no model name: the platform's, never empty


def hand_made(speedups: dict[str, dict[str, float]], machine: Machine | None = None) -> Report:
    latency = {
        backend: {batch: Latency(1.0, 1.0 / s, s, s / 2) for batch, s in rows.items()}
        for backend, rows in speedups.items()
    }
    return Report(
        RunSettings("prune", "resnet20", "m", machine=machine),
        PruningRecord("l1", target_ratio=0.5, achieved_ratio=0.5),
        Cost(40_000_000, 270_000),
        Cost(20_000_000, 135_000),
        latency=latency,
    )


def test_a_slower_pruned_model_is_said_in_one_line_at_the_top() -> None:
    report = hand_made({"eager": {"1": 1.8, "64": 1.9}, "onnxruntime": {"64": 0.79, "1": 0.95}})
    assert report.slower == [("onnxruntime", "1", 0.95), ("onnxruntime", "64", 0.79)]
    lines = markdown(report).splitlines()
    assert lines[0] == "# Pruning report: resnet20 with l1"
    assert lines[2] == (
        "**Slower than the unpruned model: onnxruntime batch 1 at 0.95x, onnxruntime batch 64 "
        "at 0.79x.**"
    )
    assert "Channel floor" not in markdown(report)
    report.pruning.details["floor"] = {"fraction": 0.125, "ends_fraction": 0.25, "min_channels": 1}
    assert "Channel floor: 0.125 of each group, 0.25 of the stem" in markdown(report)
    faster = hand_made({"eager": {"1": 1.8}, "onnxruntime": {"64": 1.0}})
    assert faster.slower == [] and slower_note(faster) == ""
    assert "Slower" not in markdown(faster)


def test_the_machine_is_under_the_latency_table_and_round_trips() -> None:
    machine = Machine("Intel(R) Xeon(R) Platinum 8480+", ["AVX2", "AVX-512 F"], "2.4.0", None, 2)
    report = hand_made({"eager": {"1": 1.5}}, machine)
    text = markdown(report)
    table_end = text.index("| 1 | 1.000 | 0.667 | 1.50x | 0.75 |")
    line = "Machine: Intel(R) Xeon(R) Platinum 8480+ (AVX2, AVX-512 F; no AVX-512 VNNI, AMX)"
    assert text.index(line) > table_end
    again = Report.from_json(json.loads(json.dumps(report.to_json())))
    assert again == report and again.settings.machine == machine


def test_reports_written_before_the_machine_still_load() -> None:
    old = Report.from_json(json.loads((EXAMPLES / "prune-v1.json").read_text()))
    assert old.settings.machine is None and "Machine:" not in markdown(old)
    data = hand_made({"eager": {"1": 1.5}}).to_json()
    del data["settings"]["machine"]  # a schema-2 report from before the field
    assert Report.from_json(data).settings.machine is None


def test_the_end_of_a_run_warns_when_the_pruned_model_is_slower(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from secateurs.runs import result

    monkeypatch.setattr(result, "save_model", lambda *args: None)
    monkeypatch.setattr(result, "write_report", lambda *args: None)
    run = SimpleNamespace(directory=tmp_path)
    manifest = SimpleNamespace()
    monkeypatch.setattr(result, "replace", lambda manifest, **changes: manifest)
    with caplog.at_level("WARNING", logger="secateurs.runs.result"):
        result.finish(run, None, manifest, hand_made({"onnxruntime": {"64": 0.79}}))
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith("Slower than the unpruned model: onnxruntime batch 64 at 0.79x.")
    caplog.clear()
    with caplog.at_level("WARNING", logger="secateurs.runs.result"):
        result.finish(run, None, manifest, hand_made({"onnxruntime": {"64": 1.2}}))
    assert not caplog.records
