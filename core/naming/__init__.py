"""Naming prototypes from CUB-200-2011 attributes (SPEC §4).

`rules` holds the configurable procedure, `vocabulary` turns `group::value` attributes
into words, `naming` applies the rules to a prototype's nearest patches and records the
evidence, `cli` is `python -m core name`. Torch-free.
"""
