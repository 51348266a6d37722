"""Our wording for HIVE's distinction and agreement tasks and for prototype–query similarity.

Written for this toolkit (no sentence is copied); each constant says which part of which
source it renders. Sources:
- HIVE (Kim et al., ECCV 2022), princetonvisualai/HIVE: hit_templates/task_protopnet_distinction.html,
  task_protopnet_agreement.html, intro_protopnet.html, and the supplementary material
  (materials/HIVE_suppmat.pdf, section A "Details on the evaluation tasks", section B "ProtoPNet").
- Davoodi et al., "On the interpretability of part-prototype based classifiers: a human centric
  analysis" (Sci. Rep. 2023), section "Prototype-query similarity". Their annotators chose
  between two prototype/activation pairs (and, in an absolute variant, could answer both or
  neither); the 5-point rating below is this toolkit's adaptation (docs/DEVIATIONS.md), its
  labels are ours.
No text here names a method or a class; `{class_name}` is filled in by the agreement kind only
(the distinction task hides class names).
"""
from __future__ import annotations

# -- shared model description (HIVE intro_protopnet.html: how a prototype model decides) ----
MODEL_INTRO = (
    "The AI system recognises what a photo shows by comparing parts of it with example parts "
    "(called prototypes) that it took from photos it learned from. For each prototype it finds "
    "the part of the new photo that looks most alike, and it picks the answer whose prototypes "
    "match the photo best."
)

# -- distinction (HIVE task_protopnet_distinction.html; suppmat A: k = 4 explanations per photo) --
DISTINCTION_K = 4   # HIVE shows the explanations of the top-4 classes ("random guessing: 25%")
DISTINCTION_INSTRUCTION = (
    "Each panel below shows the system's evidence for one possible answer: on the left, a part "
    "of the photo (yellow box); on the right, the prototype it was matched with (yellow box). "
    "The answers' names are hidden and the panels are in random order."
)
# HIVE's variant: the participant names the class the model predicted (HIVE showed correctly
# predicted images for ProtoPNet, so this was also the true class; suppmat A).
DISTINCTION_QUESTION_PREDICTED = "Which panel shows the evidence for the answer the AI system chose?"
# The spec's alternative: which panel belongs to the true class (HIVE's GradCAM/BagNet studies:
# for a wrong prediction the panels are the top 3 classes and the true class; suppmat A).
DISTINCTION_QUESTION_CORRECT = "Which panel shows the evidence for the correct answer?"
DISTINCTION_CHANCE_NOTE = "Guessing would be right one time in {k}."   # HIVE: "Random guessing ... 25%"

# -- agreement (HIVE task_protopnet_agreement.html; suppmat A: 4-point scale, 5 right + 5 wrong) ----
AGREEMENT_INSTRUCTION = (
    "The AI system says this photo shows: {class_name}. Below is its explanation: each row pairs a "
    "part of the photo (left, yellow box) with the prototype it matched (right, yellow box), the "
    "strongest match first."
)
AGREEMENT_QUESTION = "How sure are you that the AI system's answer is right?"
# HIVE's 4-point scale, from "confident the prediction is incorrect" (1) to "confident it is
# correct" (4) (suppmat A; the template lists the same four options, correct first).
AGREEMENT_SCALE = (
    "Sure it is wrong",
    "Rather think it is wrong",
    "Rather think it is right",
    "Sure it is right",
)

# -- prototype–query similarity (Davoodi et al., "Prototype-query similarity") ----------------
SIMILARITY_INSTRUCTION = (
    "Left: a prototype, a part of a photo the AI system learned from (yellow box). Middle: a new "
    "photo with the part the system found most alike (yellow box); right: that part enlarged."
)
SIMILARITY_QUESTION = "How similar is the part in the new photo to the prototype?"
# Our labels (the paper asked for a choice, not a rating; see the module docstring). HIVE's
# prototype-region similarity ratings used four points, "not similar" .. "similar" (suppmat A).
SIMILARITY_SCALE = (
    "Not similar at all",
    "Slightly similar",
    "Moderately similar",
    "Very similar",
    "Practically the same",
)

ANSWER_LETTERS = "ABCDEFGHIJ"   # panel labels of the distinction task (study/stimuli/render.py)
