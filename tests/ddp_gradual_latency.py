"""Run by tests/test_taylor_gradual_latency.py under torchrun (two CPU processes): gradual
latency pruning on the scripted backend; each rank writes how many models it timed."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from latency_helpers import ScriptedBackend
from secateurs.runs.training_time_run import TrainingJob, run_training_time

timed: list[int] = []
untimed = ScriptedBackend.time


def counted(self, items, timing):
    timed.append(len(items))
    return untimed(self, items, timing)


def main(model: str, out: str) -> None:
    ScriptedBackend.time = counted
    job = TrainingJob.for_method(
        "taylor-gradual", model=model, out=out, data="digits", epochs=2, target_latency=0.6,
        backend="scripted", latency_cache=Path(out).parent / "cache", steps=2, threads=1,
        train_subset=256, test_subset=64, batch_size=64, latency_repeats=0,
    )  # fmt: skip
    job.check()
    run_training_time(job)
    rank = os.environ.get("RANK", "0")
    (Path(out).parent / f"timed-{rank}.json").write_text(json.dumps(sum(timed)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
