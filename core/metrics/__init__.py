"""Automatic prototype quality metrics on CUB-format part annotations (docs/METRICS.md).

Part consistency and stability (Huang et al., ICCV 2023), purity (PIP-Net, Nauta et al.,
CVPR 2023) and the share of activation inside the object box, per prototype and per
model. `python -m core metrics` writes them as metrics.json (optionally into an atlas).
`core.metrics.figures`: the figures that say whether a trained demo model works
(accuracy, named share, localisation; read by bench/bench_demo.py). It sits here, above
`core.training` and `core.explain`, because it needs both.
"""
from core.metrics.output import METRICS_FORMAT, METRICS_VERSION, attach_to_atlas, read_metrics, write_metrics

__all__ = ["METRICS_FORMAT", "METRICS_VERSION", "attach_to_atlas", "read_metrics", "write_metrics"]
