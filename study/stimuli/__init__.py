"""Stimuli of the prediction-based question kinds (HIVE's distinction and agreement tasks,
prototype–query similarity): the atlas's `predictions` section read torch-free
(`predictions`), candidate selection (`candidates`), pictures (`render`) and wording
(`wording_new_kinds`). The kind modules (study/kinds/) call these functions."""
