"""Default wording of every study kind, in our own words.

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

BY_KIND: dict[str, dict] = {
    "saliency": {
        "instructions": (
            "Each question shows a photograph and, next to it, the same photograph with a "
            "coloured map added by an AI system. Warm colours (red, yellow) mark the part "
            "of the image the system relies on. Rate how salient (clearly visible and "
            "meaningful) the marked feature is to you. There is no time limit and there "
            "are no right or wrong answers."
        ),
        "question": "How salient is the feature pointed out by the AI system?",
        "scale": {"points": 5, "labels": {"1": "least salient", "5": "most salient"}},
    },
    "likert": {
        "instructions": (
            "Each question shows a photograph and the same photograph with a coloured map "
            "added by an AI system. Answer the question using the scale below it."
        ),
        "question": "How much do you agree that the marked region is meaningful?",
        "scale": {"points": 5, "labels": {"1": "strongly disagree", "5": "strongly agree"}},
    },
    "consistency": {
        "instructions": (
            "Each question shows two sets of image patches, set A and set B. In each set "
            "the yellow boxes are meant to show one single meaning: a particular "
            "characteristic of one part of the object (for example a striped tail or a "
            "red beak). Choose the set whose boxes show one meaning more consistently. If "
            "you cannot tell, choose \"Impossible to decide\"."
        ),
        "question": "Which set of yellow boxes is more consistent?",
        "choices": {"A": "Set A", "B": "Set B", "undecided": "Impossible to decide"},
    },
    "pairwise": {
        "instructions": (
            "Each question shows the same photograph twice, each time with a coloured map "
            "added by an AI system. Choose the map that points to a more meaningful part "
            "of the image. If you cannot tell, choose \"Impossible to decide\"."
        ),
        "question": "Which map points to a more meaningful part of the image?",
        "choices": {"A": "Image A", "B": "Image B", "undecided": "Impossible to decide"},
    },
}


def defaults_for(kind: str) -> dict:
    """The complete default wording for one study kind (a fresh copy the caller may edit)."""
    merged = dict(COMMON)
    for key, value in BY_KIND[kind].items():
        merged[key] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in value.items()} \
            if isinstance(value, dict) else value
    return merged
