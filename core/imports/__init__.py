"""Checkpoints trained with the official ProtoPool / ProtoPNet / ProtoPShare code.

`python -m core import-checkpoint` (core.imports.cli); the restricted reading is in
core.unpickle, the mapping of weights and forward passes in core.imports.convert.
"""
