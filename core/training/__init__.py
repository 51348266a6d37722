"""Training pipeline: config, phases (pretrain, warm-up, joint, projection, last layer),
checkpoints, projection, distributed helpers and the `train` / `evaluate` / `project`
commands. Submodules are imported on demand (torch is heavy)."""
