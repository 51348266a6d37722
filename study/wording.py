"""Default wording common to every study kind, in our own words (each kind's own wording:
its module under study/kinds/).

A spec may override any field under `wording:`; whatever it leaves out comes from here,
so a minimal spec still produces a complete, neutral questionnaire. Nothing here may
name a method: participants read all of it.
"""
from __future__ import annotations

COMMON: dict[str, str] = {
    "title": "Image study",
    "consent": (
        "This study is part of research on how people perceive explanations produced by "
        "image classifiers. Taking part is voluntary; you may stop at any time. We store "
        "your answers and response times with an anonymous identifier, and nothing that "
        "identifies you personally. By continuing you confirm that you are at least 18 "
        "years old and agree to take part."
    ),
    "consent_button": "I agree, start the study",
    "decline_button": "I do not agree",
    "no_consent_message": (
        "You did not agree to take part, so the study ends here. Nothing you did on this page "
        "has been recorded. Thank you for your time."
    ),
    "next_button": "Next",
    "completion_message": "Thank you! You have completed the study.",
    "screen_out_message": (
        "Thank you for your time. Unfortunately some control questions were not answered "
        "as instructed, so we cannot use your answers in this study."
    ),
    "attention_question": (
        "This is a control question to check that you read the instructions. "
        "Please select \"{label}\"."
    ),
}

def defaults_for(kind: str) -> dict:
    """The complete default wording for one study kind (a fresh copy the caller may edit)."""
    from study.kinds import kind_of

    merged = dict(COMMON)
    for key, value in kind_of(kind).wording.items():
        merged[key] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in value.items()} \
            if isinstance(value, dict) else value
    return merged
