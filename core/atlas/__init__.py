"""Atlases (FORMATS.md §4): the per-model artifact that studies read.

`format` (torch-free: stdlib + numpy) reads, validates and writes the folder;
`build` fills it from a checkpoint; `import_heatmaps` from another method's output.
"""
