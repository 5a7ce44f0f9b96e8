"""The latency options of ``secateurs prune``: bad input is one line and exit 2, and what the
job hands the allocator."""

from __future__ import annotations

import pytest

from secateurs.cli.main import main
from secateurs.errors import SecateursError
from secateurs.runs.prune_job import PruneJob


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--target-latency", "1.5"], "between 0 and 1 exclusive, not 1.5"),
        (["--target-latency", "0"], "between 0 and 1 exclusive, not 0.0"),
        (["--target-latency", "0.5", "--backend", "tpu"], "invalid choice: 'tpu'"),
        (["--round-to", "fast"], "'fast' is not a whole number"),
        (["--target-latency", "0.5", "--target-macs", "0.5"], "not allowed with argument"),
    ],
)
def test_bad_latency_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["prune", str(tmp_path / "m"), "--method", "l1", *argv, "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_.value.code == 2
    assert len(lines) == 1 and message in lines[0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "pfp"}, "pfp allocates channels its own way"),
        ({"method": "l1", "strategy": "uniform"}, "allocates globally"),
        ({"method": "l1", "steps": 2}, "one step"),
    ],
)
def test_latency_targets_the_allocation_cannot_meet_are_refused(tmp_path, options, message):
    job = PruneJob(model=tmp_path, out=tmp_path / "o", target_latency=0.5, **options)
    with pytest.raises(SecateursError, match=message):
        job.check()


def test_the_job_hands_the_allocator_its_latency_source(tmp_path) -> None:
    job = PruneJob(
        model=tmp_path, out=tmp_path / "o", method="l1", target_latency=0.4, backend="eager",
        latency_batch=8, threads=1, round_to="auto", latency_cache=tmp_path / "cache",
    )  # fmt: skip
    settings = job.settings()
    assert (settings.target.kind, settings.target.ratio) == ("latency", 0.4)
    allocation = settings.allocation
    assert allocation.auto_widths and allocation.round_to == 1
    spec = allocation.latency.spec
    assert (spec.backend, spec.batch, spec.threads, spec.cache) == (
        "eager",
        8,
        1,
        tmp_path / "cache",
    )
    assert allocation.latency.key.batch == 8 and allocation.latency.key.threads == 1
