"""Questionnaires: specs, stimuli, blinding, answers, platforms, analysis.

Reads atlases from disk; never imports torch (see DESIGN.md).
"""
