"""The inter-class similarity graph (SPEC section 2): classes are nodes, an edge's weight
is the number of prototypes two classes share.

Works from a (C, M) bool class-prototype mask, so it serves ProtoPNet after merging and
ProtoPool (its hard assignment) alike; `model.class_prototype_mask()` gives the mask.
Plain dicts and numpy for the data (JSON-able, for checkpoints, atlases and the app);
`to_networkx` for graph algorithms.
"""
from __future__ import annotations

import numpy as np


def _mask(model_or_mask) -> np.ndarray:
    if hasattr(model_or_mask, "class_prototype_mask"):
        model_or_mask = getattr(model_or_mask, "module", model_or_mask).class_prototype_mask()
    if hasattr(model_or_mask, "detach"):
        model_or_mask = model_or_mask.detach().cpu().numpy()
    mask = np.asarray(model_or_mask).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"class-prototype mask must be 2-D (classes, prototypes), got shape {mask.shape}")
    return mask


def sharing_matrix(model_or_mask) -> np.ndarray:
    """(C, C) int: entry (c, d) = prototypes serving both c and d; diagonal = c's prototypes."""
    m = _mask(model_or_mask).astype(np.int64)
    return m @ m.T


def classes_per_prototype(model_or_mask) -> np.ndarray:
    """(M,) int: how many classes each prototype serves."""
    return _mask(model_or_mask).sum(axis=0)


def sharing_summary(model_or_mask) -> dict:
    """Counts recorded after every merge step: shared prototypes, edges, classes per prototype."""
    mask = _mask(model_or_mask)
    per_proto = mask.sum(axis=0)
    shared = sharing_matrix(mask)
    upper = np.triu(shared, k=1)
    values, counts = np.unique(per_proto, return_counts=True)
    return {"shared_prototypes": int((per_proto > 1).sum()),
            "graph_edges": int((upper > 0).sum()),
            "classes_per_prototype": {str(int(v)): int(c) for v, c in zip(values, counts)}}


def sharing_graph(model_or_mask, class_names: list[str] | None = None) -> dict:
    """{"nodes": [{"id", "name", "prototypes"}], "edges": [{"source", "target", "weight"}]},
    edges with source < target and weight > 0, heaviest first."""
    mask = _mask(model_or_mask)
    shared = sharing_matrix(mask)
    c = mask.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(c)]
    if len(names) != c:
        raise ValueError(f"class_names has {len(names)} names for {c} classes")
    nodes = [{"id": i, "name": names[i], "prototypes": int(shared[i, i])} for i in range(c)]
    src, dst = np.nonzero(np.triu(shared, k=1))
    edges = [{"source": int(a), "target": int(b), "weight": int(shared[a, b])} for a, b in zip(src, dst)]
    edges.sort(key=lambda e: (-e["weight"], e["source"], e["target"]))
    return {"nodes": nodes, "edges": edges}


def to_networkx(graph: dict):
    """A networkx.Graph of `sharing_graph`'s output (node attributes name, prototypes)."""
    import networkx as nx

    g = nx.Graph()
    for node in graph["nodes"]:
        g.add_node(node["id"], name=node["name"], prototypes=node["prototypes"])
    for edge in graph["edges"]:
        g.add_edge(edge["source"], edge["target"], weight=edge["weight"])
    return g
