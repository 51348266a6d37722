"""Explanations: activation maps and overlays, nearest patches, local and global views.

`overlay` is pure numpy/OpenCV (no torch) so that anything drawing pictures can use it;
`nearest` and `local` need a model; `global_views` builds Plotly figures from arrays.
"""
