"""The offline sweep runner behind `sweeps/local.py`, in three parts:

- `planning`: a sweep YAML -> validated config -> the planned runs (parameters, argv, run id);
- `launching`: one run as a process, forked from the pre-warmed `forkserver` or as a subprocess
  (the OS-specific code lives there once);
- `pool`: runs the plan over a worker pool, triages resumable runs and keeps the manifest.

A package here, not under `sweeps/`: that folder must stay a plain folder of YAMLs and scripts,
since a package named `sweeps` would shadow W&B's sweep engine.
"""
