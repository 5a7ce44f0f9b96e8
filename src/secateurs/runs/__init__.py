"""The run skeleton: the steps every pruning run is made of, and the runs made of them.

- :mod:`.options`: each option declared once (field, default, help, check); the CLI is built
  from the declarations.
- :mod:`.job`: the options every run shares; :mod:`.run_dir`: opening a run (directory rules,
  config.json, the distributed context).
- :mod:`.data`, :mod:`.training` (the one place a Trainer is built), :mod:`.measuring`,
  :mod:`.result` (report assembled, model saved).
- The runs: :mod:`.prune_run` (one-shot methods) and :mod:`.spp_run` (training-time SPP).
"""
