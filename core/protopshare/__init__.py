"""ProtoPShare (SPEC section 2): prototype similarities, merge-pruning, Theorem 1's
diagnostic, the class-sharing graph, and prototype pairs for consistency studies.

Modules: similarity (activation matrix, d_DD, Euclidean), merge (merge step and loop),
bound (Theorem 1), graph (class-sharing graph), pairs (pairs for an atlas), cli
(`python -m core merge-prune`). Imported by module, so `import core.protopshare` stays cheap.
"""
