"""The analysis a researcher declares in the study spec (`analysis:` section).

Why declared up front: a reviewer trusts the primary test only if it was chosen
before the data came in. The spec names it (`primary`), the direction of the
hypothesis, alpha, and the power plan; `python -m study analyze --spec` and
`python -m study prereg` read it from here, so both say the same thing.

    analysis:
      primary: clmm            # clmm (default) | participant | answer
      target: ProtoPool        # method expected to be rated higher (saliency)
      baselines: [ProtoTree]   # default: every other method
      alternative: greater     # greater | less | two-sided
      alpha: 0.05
      confidence: 0.95
      hypotheses: ["Explanations of ProtoPool are rated more salient than ..."]
      power: {power: 0.8, sims: 200, participants: 40, log_odds_ratio: 0.5,
              participant_sd: 0.8, item_sd: 0.5, slope_sd: 0.3}
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from study.errors import StudyError

@dataclass(frozen=True)
class Primary:
    """One primary analysis a spec may declare (the registry of primaries). `mixed`: it is a
    mixed model (the mixed models cannot be turned off); `fallback`: the declared order of
    model structures tried when the first does not converge (empty: no fallback).
    What it is called where the outputs name it: `labels` (its ratings part and its choices
    part, joined in PRIMARY_LABELS), `rating_test` and `choice_test` (the report sentence);
    with more than two pair sources `multi_suffix` and `multi_words` (the per-source
    estimates), `multi_reference` (the reference source's estimate when the estimates are
    relative to it, else None), `multi_lead` (the estimates say which source leads);
    `power_test`: the test of `python -m study power` that simulates it."""
    name: str
    unit: str
    mixed: bool
    fallback: tuple[str, ...] = ()
    labels: tuple[str, str] = ("", "")
    rating_test: str = ""
    choice_test: str = ""
    multi_suffix: str = ""
    multi_words: str = ""
    multi_reference: float | None = None
    multi_lead: bool = True
    power_test: str = ""          # `python -m study power --test` that simulates it

    def pick(self, **per_primary):
        """The value given for this primary among one given for every registered primary,
        by name: `PRIMARIES[p].pick(clmm=a, participant=b, answer=c)`. A site that treats
        primaries differently names them all, so a new primary fails there at once."""
        if set(per_primary) != set(PRIMARIES):
            raise TypeError(f"pick: expected one value per primary analysis "
                            f"({', '.join(PRIMARIES)}), got {', '.join(per_primary)}")
        return per_primary[self.name]

    def role(self, name: str) -> str:
        """'primary' when `name` is this primary, else 'secondary' (report labels); `name`
        must be a registered primary."""
        if name not in PRIMARIES:
            raise KeyError(f"{name!r} is not a primary analysis ({', '.join(PRIMARIES)})")
        return "primary" if name == self.name else "secondary"


# registry of primary analyses; each kind says what it means for its answers
# (study/kinds/analyses.py: KindAnalysis.primaries)
PRIMARIES: dict[str, Primary] = {p.name: p for p in (
    Primary("clmm", "answer in participant x item (mixed model)", True,
            ("maximal", "uncorrelated slopes", "crossed intercepts"),
            labels=("mixed models: cumulative link mixed model of ratings, maximal random effects "
                    "(by-participant correlated method slopes, item intercepts; declared fallback: "
                    "uncorrelated slopes, then crossed intercepts), likelihood-ratio test of each "
                    "target-baseline contrast, Holm, profile-likelihood interval",
                    "logistic mixed model of consistency choices (crossed participant and pair "
                    "intercepts, likelihood-ratio test; parametric bootstrap below 10 participants "
                    "or pairs)"),
            rating_test="CLMM", choice_test="logistic mixed model", multi_suffix=" (Bradley-Terry)",
            multi_words="odds ratio of choosing", multi_reference=1.0, power_test="clmm"),
    Primary("participant", "participant", False,
            labels=("participant level: Wilcoxon signed-rank test of participant mean ratings (Holm)",
                    "for consistency, Wilcoxon test of participant proportions against 1/2"),
            rating_test="participant-level Wilcoxon test", choice_test="participant-level Wilcoxon test",
            multi_words="mean win rate of", power_test="wilcoxon"),
    Primary("answer", "answer", False,
            labels=("answer level: Mann-Whitney U of pooled ratings (Holm)",
                    "for consistency, binomial test of pooled choices against 1/2"),
            rating_test="answer-level Mann-Whitney test", choice_test="answer-level binomial test",
            multi_words="proportion choosing the first in", multi_lead=False,
            power_test="mannwhitney"),
)}
PRIMARY_ANALYSES = tuple(PRIMARIES)
ALTERNATIVES = ("greater", "less", "two-sided")
PRIMARY_LABELS = {name: "; ".join(p.labels) for name, p in PRIMARIES.items()}
POWER_FIELDS = {"power", "sims", "participants", "log_odds_ratio", "participant_sd",
                "item_sd", "slope_sd", "items_per_method", "seed", "max_participants"}


@dataclass(frozen=True)
class PowerPlan:
    power: float = 0.8
    sims: int = 200
    participants: int | None = None
    log_odds_ratio: float | None = None
    participant_sd: float = 0.8
    item_sd: float = 0.5
    slope_sd: float = 0.3            # SD of the by-participant method effect (maximal model)
    items_per_method: int | None = None
    seed: int | None = None
    max_participants: int = 400


@dataclass(frozen=True)
class AnalysisPlan:
    primary: str = "clmm"
    target: str | None = None
    baselines: tuple[str, ...] | None = None
    alternative: str = "greater"
    alpha: float = 0.05
    confidence: float = 0.95
    hypotheses: tuple[str, ...] = ()
    power: PowerPlan = field(default_factory=PowerPlan)
    declared: bool = False   # the spec had an analysis section

    def to_dict(self) -> dict:
        return asdict(self)


def _fail(path, name, message) -> StudyError:
    return StudyError(f"{path}: field 'analysis.{name}': {message}")


def _prob(path, data, name, default, lo=0.0, hi=1.0) -> float:
    v = data.get(name, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v < hi:
        raise _fail(path, name, f"must be a number between {lo} and {hi} (got {v!r})")
    return float(v)


def parse_analysis_plan(raw, path: str | Path = "spec") -> AnalysisPlan:
    """Validate the `analysis` mapping of a spec (None = defaults)."""
    if raw is None:
        return AnalysisPlan()
    if not isinstance(raw, dict):
        raise StudyError(f"{path}: field 'analysis': must be a mapping")
    allowed = {"primary", "target", "baselines", "alternative", "alpha", "confidence",
               "hypotheses", "power"}
    for key in raw:
        if key not in allowed:
            raise _fail(path, key, f"unknown field (allowed: {', '.join(sorted(allowed))})")
    primary = raw.get("primary", "clmm")
    if primary not in PRIMARY_ANALYSES:
        raise _fail(path, "primary", f"must be one of {', '.join(PRIMARY_ANALYSES)} "
                                     f"(got {primary!r})")
    target = raw.get("target")
    if target is not None and (not isinstance(target, str) or not target.strip()):
        raise _fail(path, "target", f"must be a method label (got {target!r})")
    baselines = raw.get("baselines")
    if baselines is not None:
        if (not isinstance(baselines, list) or not baselines
                or not all(isinstance(b, str) and b.strip() for b in baselines)):
            raise _fail(path, "baselines", "must be a non-empty list of method labels")
        if target in baselines:
            raise _fail(path, "baselines", f"must not contain the target {target!r}")
        baselines = tuple(baselines)
    alternative = raw.get("alternative", "greater")
    if alternative not in ALTERNATIVES:
        raise _fail(path, "alternative", f"must be one of {', '.join(ALTERNATIVES)} "
                                         f"(got {alternative!r})")
    hyp = raw.get("hypotheses", [])
    if isinstance(hyp, str):
        hyp = [hyp]
    if not isinstance(hyp, list) or not all(isinstance(h, str) and h.strip() for h in hyp):
        raise _fail(path, "hypotheses", "must be a list of sentences")
    pw = raw.get("power") or {}
    if not isinstance(pw, dict):
        raise _fail(path, "power", "must be a mapping")
    for key in pw:
        if key not in POWER_FIELDS:
            raise _fail(path, f"power.{key}", f"unknown field (allowed: "
                                              f"{', '.join(sorted(POWER_FIELDS))})")

    def pint(name, default, lo):
        v = pw.get(name, default)
        if v is None and default is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise _fail(path, f"power.{name}", f"must be an integer >= {lo} (got {v!r})")
        return v

    def pnum(name, default, lo):
        v = pw.get(name, default)
        if v is None and default is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo:
            raise _fail(path, f"power.{name}", f"must be a number >= {lo} (got {v!r})")
        return float(v)

    target_power = pw.get("power", 0.8)
    if isinstance(target_power, bool) or not isinstance(target_power, (int, float)) \
            or not 0 < target_power < 1:
        raise _fail(path, "power.power", f"must be a number between 0 and 1 (got {target_power!r})")
    power = PowerPlan(
        power=float(target_power),
        sims=pint("sims", 200, 20), participants=pint("participants", None, 2),
        log_odds_ratio=pnum("log_odds_ratio", None, -1e9),
        participant_sd=pnum("participant_sd", 0.8, 0.0), item_sd=pnum("item_sd", 0.5, 0.0),
        slope_sd=pnum("slope_sd", 0.3, 0.0),
        items_per_method=pint("items_per_method", None, 1), seed=pint("seed", None, 0),
        max_participants=pint("max_participants", 400, 2))
    return AnalysisPlan(primary=primary, target=target, baselines=baselines,
                        alternative=alternative, alpha=_prob(path, raw, "alpha", 0.05),
                        confidence=_prob(path, raw, "confidence", 0.95),
                        hypotheses=tuple(h.strip() for h in hyp), power=power, declared=True)
