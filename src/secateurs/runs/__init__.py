"""The runs: the steps every pruning run is made of, and the runs made of them. Above the
pruning engine, the latency model and the store; below the command line and the Python API,
which both run these.

- :mod:`.job` (the options every run shares), :mod:`.run_dir` (opening a run: directory rules,
  config.json, the distributed context), :mod:`.data`, :mod:`.training` (the one place a
  Trainer is built), :mod:`.fine_tuning`, :mod:`.measuring`, :mod:`.result` (report assembled,
  model saved), :mod:`.torch_state` (torch's global settings put back for the Python API).
- The runs: :mod:`.prune_run` (one-shot methods; options in :mod:`.prune_job`),
  :mod:`.training_time_run` (every registered training-time method), :mod:`.train_run`
  (``secateurs train``), :mod:`.transfer` (``train --from``).
"""
