"""Comparing two names: token alignment, a handful of features, and a logistic
score whose terms are the explanation.

Two names are normalised (``normalize``), their tokens aligned one to one by
similarity (exact, initials, edit distance, Jaro-Winkler, phonetic key), and
the alignment summarised as features: how much of each name's weight is
matched, the weakest aligned pair of distinctive words (its similarity, and the
edits between its two words, capped at 3: a typo is one edit, another real name
usually more), distinctive and generic words left over, the names compared as
one string, numbers that disagree, word order, differences within one
non-Latin script. The score is a
logistic function of the features with published weights (``data/matcher.json``,
fitted by ``bench/fit_matcher.py`` on a labelled benchmark; one set for people,
one for organisations). Every score comes with each feature's value and what
it added, so a screener sees why a name matched.

Rare-token weighting: a token's weight falls with the number of listed names
that contain it, and generic words, place names and particles weigh little,
so "China Technology Company" never matches "China Mobile Technology" on the
strength of "china" and "technology". A pair with no distinctive word in
common cannot reach the threshold whatever its features say.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from jellyfish import metaphone
from rapidfuzz.distance import OSA, JaroWinkler, Levenshtein

from cleanroom.screen.normalize import (
    GENERIC,
    GENERIC_WORDS,
    NUMBER,
    PARTICLE,
    PLACE,
    WORD,
    Name,
    normalize,
)

FEATURES = (
    "coverage_min",
    "coverage_max",
    "weakest_pair",
    "extra_words",
    "extra_minor",
    "joined",
    "number_mismatch",
    "order",
    "native_difference",
    "weakest_edits",
)
FEATURE_TEXT = {
    "coverage_min": "share of the shorter name's weight its aligned words carry",
    "coverage_max": "share of the longer name's weight its aligned words carry",
    "weakest_pair": "similarity of the least alike pair of aligned distinctive words",
    "extra_words": "distinctive words of either name left without a partner (up to 3)",
    "extra_minor": "generic words of either name left without a partner (up to 3)",
    "joined": "similarity of the distinctive words run together as one string",
    "number_mismatch": "both names carry numbers and they differ",
    "order": "1 when the aligned words come in the same order, less with each inversion",
    "native_difference": "edits between two names written in the same non-Latin script",
    "weakest_edits": "edits between the words of the least alike pair (up to 3)",
}
KIND_WEIGHT = {GENERIC: 0.15, PLACE: 0.2, PARTICLE: 0.25, NUMBER: 0.6}
# A distinctive pair must be at least this similar for the names to share a word.
SHARED_WORD = 0.85
# Two tokens less similar than this are not the same word written differently.
ALIGN = 0.5
# Names whose distinctive words, run together, are this similar are one name.
JOINED = 0.9
# Without a shared distinctive word the score is capped just below the threshold.
CAP_BELOW = 0.05
# A word this frequent in general English (Zipf scale, ``wordfreq``: 3.5 is about
# three uses per million words — "spring", "atlas", "liberty", "tesla") names
# thousands of companies: alone it says nothing about which.
COMMON_ZIPF = 3.5
# A lone word this short matched with an edit is, against tens of thousands of
# listed names, more often another word than a typo ("Tesla" and "TESA",
# "Kering" and "BERING"); only a swap of two neighbouring letters is taken as one.
SHORT_WORD = 6
# A word seen at least this often in English text (Zipf 2: once in ten million
# words; most brands of listed companies' size) is a word of its own, not a slip.
KNOWN_ZIPF = 2.0


@dataclass(frozen=True)
class Model:
    """Weights of one logistic score (bias first, then one per feature)."""

    bias: float
    weights: dict[str, float]

    def logit(self, features: dict[str, float]) -> tuple[float, dict[str, float]]:
        terms = {f: self.weights[f] * features[f] for f in FEATURES}
        return self.bias + sum(terms.values()), terms


# The matcher's logic: bump when a rule of the code changes what a pair scores
# (the weights' digest changes on its own when they are refitted).
MATCHER = "cleanroom-names"
LOGIC = 2


@dataclass(frozen=True)
class Scoring:
    """The fitted scoring models (person and organisation) and their threshold."""

    person: Model
    org: Model
    threshold: float
    provenance: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)

    def model(self, org: bool) -> Model:
        return self.org if org else self.person

    @property
    def version(self) -> str:
        """``cleanroom-names-2/<digest>``: the logic and the weights and threshold
        it runs with; every screening names it."""
        doc = {
            "logic": LOGIC,
            "threshold": self.threshold,
            **{
                k: {"bias": m.bias, "weights": m.weights}
                for k, m in (("person", self.person), ("org", self.org))
            },
        }
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]
        return f"{MATCHER}-{LOGIC}/{digest}"


@cache
def default_scoring() -> Scoring:
    raw = json.loads(
        resources.files("cleanroom.screen").joinpath("data/matcher.json").read_text("utf-8")
    )
    return scoring_from_json(raw)


def scoring_from_json(raw: dict[str, Any]) -> Scoring:
    def model(m: dict[str, Any]) -> Model:
        return Model(float(m["bias"]), {f: float(m["weights"][f]) for f in FEATURES})

    return Scoring(
        model(raw["person"]),
        model(raw["org"]),
        float(raw["threshold"]),
        raw.get("provenance", {}),
        raw.get("measured", {}),
    )


class TokenWeights:
    """How much a token says about identity: rare words weigh 1, words found in
    many listed names less, generic words, places and particles little."""

    def __init__(self, counts: Counter[str] | None = None, names: int = 0) -> None:
        self.counts = counts or Counter()
        self.names = max(names, 1)
        self._full = math.log(max(self.names, 100) / 50)

    @classmethod
    def from_names(cls, names: Iterable[Name]) -> TokenWeights:
        counts: Counter[str] = Counter()
        n = 0
        for name in names:
            n += 1
            counts.update(set(name.texts))
        return cls(counts, n)

    def weight(self, text: str, kind: str) -> float:
        if kind != WORD:
            return KIND_WEIGHT[kind]
        df = self.counts.get(text, 0)
        if df <= 50:
            return 1.0
        idf = math.log(self.names / (df + 1))
        return max(0.25, min(1.0, idf / self._full))


# Short forms of given names (both map to the same full name).
_NICKNAMES = {
    "bibi": "benjamin", "ben": "benjamin", "benny": "benjamin", "bill": "william",
    "billy": "william", "will": "william", "bob": "robert", "rob": "robert", "bobby": "robert",
    "dick": "richard", "rick": "richard", "jim": "james", "jimmy": "james", "mike": "michael",
    "tom": "thomas", "tony": "anthony", "alex": "alexander", "sasha": "alexander",
    "vova": "vladimir", "volodya": "vladimir", "kate": "katherine", "liz": "elizabeth",
    "beth": "elizabeth", "joe": "joseph", "dave": "david", "dan": "daniel", "chris": "christopher",
    "nick": "nicholas", "sam": "samuel", "ed": "edward", "ted": "edward", "fred": "frederick",
    "harry": "henry", "jack": "john", "johnny": "john", "peggy": "margaret", "kolya": "nikolai",
    "misha": "mikhail", "dima": "dmitry", "sergei": "sergey", "lyosha": "aleksey",
}  # fmt: skip


def token_similarity(a: str, b: str, person: bool) -> float:
    if a == b:
        return 1.0
    if person and _NICKNAMES.get(a, a) == _NICKNAMES.get(b, b):
        return 0.9
    if a.isdigit() or b.isdigit():
        return 0.0
    if len(a) == 1 or len(b) == 1:
        return 0.8 if person and a[0] == b[0] else 0.0
    s = (OSA.normalized_similarity(a, b) + JaroWinkler.similarity(a, b)) / 2
    if len(a) >= 3 and len(b) >= 3 and s < 0.9 and _phonetic(a) == _phonetic(b):
        s = 0.9
    return s


@cache
def _phonetic(word: str) -> str:
    return metaphone(word)


@dataclass(slots=True)
class Alignment:
    """Two names' tokens paired: token i of the first with (token j of the
    second, their similarity), and the weight of every token of each."""

    wa: list[float]
    wb: list[float]
    pairs: dict[int, tuple[int, float]]
    used_b: set[int]

    def coverage(self) -> tuple[float, float]:
        """The share of each name's weight its paired tokens carry."""
        got_a = sum(self.wa[i] * s for i, (_, s) in self.pairs.items())
        got_b = sum(self.wb[j] * s for _, (j, s) in self.pairs.items())
        return (
            got_a / sum(self.wa) if self.wa else 0.0,
            got_b / sum(self.wb) if self.wb else 0.0,
        )


def _weakest_pair(a: Name, b: Name, al: Alignment) -> tuple[float, int, bool]:
    """The weakest word-to-word pair (its similarity, the edits between its
    words) and whether some pair of words is as good as the same word."""
    weakest = 1.0
    edits = 0
    shared = False
    for i, (j, s) in al.pairs.items():
        ka, kb = a.tokens[i].kind, b.tokens[j].kind
        if (ka in (WORD, NUMBER) or kb in (WORD, NUMBER)) and PLACE not in (ka, kb):
            if s < weakest:
                edits = OSA.distance(a.tokens[i].text, b.tokens[j].text)
            weakest = min(weakest, s)
            if s >= SHARED_WORD and ka == WORD and kb == WORD:
                shared = True
    return weakest, edits, shared


def _unpaired(a: Name, b: Name, al: Alignment) -> tuple[int, int]:
    """Tokens of either name that found no partner: (weighty words, generic words)."""
    left = [(t, al.wa[i]) for i, t in enumerate(a.tokens) if i not in al.pairs] + [
        (t, al.wb[j]) for j, t in enumerate(b.tokens) if j not in al.used_b
    ]
    extra = sum(1 for t, w in left if t.kind == WORD and w >= 0.5)
    minor = sum(1 for t, _ in left if t.kind == GENERIC)
    return extra, minor


def _word_order(a: Name, b: Name, al: Alignment) -> float:
    """1 when the paired words come in the same order in both names, less with
    each inversion (over word-to-word pairs: the feature is symmetric)."""
    order = sorted(
        (i, j)
        for i, (j, _) in al.pairs.items()
        if a.tokens[i].kind == WORD and b.tokens[j].kind == WORD
    )
    inversions = sum(
        1 for x in range(len(order)) for y in range(x + 1, len(order)) if order[x][1] > order[y][1]
    )
    npairs = len(order) * (len(order) - 1) / 2
    return 1.0 - inversions / npairs if npairs else 1.0


def _acronym(a: Name, b: Name) -> bool:
    """One name is the initials of the other ("PLA", "People's Liberation Army";
    "BYD", 比亚迪 by its pinyin syllables)."""
    for x, y in ((a, b), (b, a)):
        words = [t for t in x.tokens if t.kind != PLACE]
        if len(words) != 1 or len(words[0].text) < 2:
            words = [t for t in x.tokens if t.kind in (WORD, NUMBER)]
            if len(words) != 1 or len(words[0].text) < 2:
                continue
        word = words[0].text
        if len(y.tokens) >= 2 and word == "".join(t.text[0] for t in y.tokens):
            return True
        if word in y.acronyms:
            return True
    return False


def _script(text: str) -> str | None:
    """The one non-Latin script a name is written in, or None."""
    found = None
    for ch in text:
        if not ch.isalpha() or ch.isascii():
            if ch.isalpha():
                return None
            continue
        name = unicodedata.name(ch, "")
        script = name.split(" ")[0] if name else "?"
        if script == "LATIN":
            return None
        if found is None:
            found = script
        elif script != found:
            return None
    return found


def _native_difference(a: str, b: str) -> float:
    """How different two names written in the same non-Latin script are, in that
    script (one character of a Chinese or Korean name changes the person);
    0 when they are not both in one such script."""
    sa = _script(a)
    if sa is None or sa != _script(b):
        return 0.0
    edits = Levenshtein.distance("".join(a.split()).casefold(), "".join(b.split()).casefold())
    return float(min(edits, 2)) / 2


@dataclass(frozen=True)
class Comparison:
    """One scored pair, with what made the score."""

    score: float
    features: dict[str, float]
    contributions: dict[str, float]
    pairs: tuple[tuple[str, str, float], ...]  # aligned tokens and their similarity
    shared_word: bool
    query: Name
    candidate: Name
    limit: str | None = None  # why the score is held below the threshold, if it is

    def reason(self) -> str:
        """Why the names match (or do not), in words."""
        if self.limit:
            return f"held below the threshold: {self.limit}"
        same = [
            f"{a!r}" if a == b else f"{a!r}~{b!r}" for a, b, s in self.pairs if s >= SHARED_WORD
        ]
        top = sorted(self.contributions.items(), key=lambda kv: -kv[1])[:2]
        said = ", ".join(f"{_SAID.get(f, f)}" for f, v in top if v > 0)
        words = ", ".join(same) if same else "no word alike"
        return f"{words}" + (f"; {said}" if said else "")

    def explain(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 4),
            "reason": self.reason(),
            "limit": self.limit,
            "query_tokens": list(self.query.texts),
            "candidate_tokens": list(self.candidate.texts),
            "aligned": [
                {"query": a, "candidate": b, "similarity": round(s, 3)} for a, b, s in self.pairs
            ],
            "features": {
                f: {"value": round(self.features[f], 4), "adds": round(self.contributions[f], 4)}
                for f in FEATURES
            },
            "shared_distinctive_word": self.shared_word,
            "legal_forms": [list(self.query.legal), list(self.candidate.legal)],
        }


_SAID = {
    "coverage_min": "every word of the shorter name found",
    "coverage_max": "most of the longer name found",
    "weakest_pair": "even the least alike words close",
    "joined": "the names alike as one string",
    "order": "the words in the same order",
    "extra_minor": "only generic words left over",
}


@cache
def _zipf(word: str) -> float:
    """How common a word is in English text (``wordfreq``'s Zipf scale: 3 is
    once per million words)."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")


def _common(word: str) -> bool:
    return _zipf(word) >= COMMON_ZIPF


def _swap(a: str, b: str) -> bool:
    """Two words one swap of neighbouring letters apart ("hytera", "hyetra")."""
    return len(a) == len(b) and sorted(a) == sorted(b) and OSA.distance(a, b) == 1


def _thin_evidence(a: Name, b: Name, al: Alignment) -> str | None:
    """Why a pair that shares a word still says too little to alert on when
    ``a`` is screened against whole lists, or None:

    - its only alike words are short and differ by an edit other than a swap
      of neighbouring letters (one edit from a short word is another word far
      more often than a slip, against tens of thousands of listed names);
    - two people share a single name and either has another ("Douglas",
      "MPANO, Douglas");
    - two organisations share a single word, and either has a distinctive
      word the other lacks ("Linde plc", "GAZPROM LINDE ENGINEERING"), or the
      shared word is a common English one and they differ in anything else
      ("Spring Airlines", "SPRING SHIPPING LIMITED")."""
    words = [
        (i, j, a.tokens[i].text, b.tokens[j].text)
        for i, (j, s) in al.pairs.items()
        if a.tokens[i].kind == WORD and b.tokens[j].kind == WORD and s >= SHARED_WORD
    ]
    if not words:
        return None
    if all(x != y for _, _, x, y in words) and all(_not_a_slip(x, y) for _, _, x, y in words):
        _, _, x, y = words[0]
        return f"the only alike words ({x!r}, {y!r}) differ by more than a slip of the keyboard"
    if len(words) != 1:
        return None
    i, j, x, y = words[0]
    lone_a = [k for k in range(len(a.tokens)) if k != i and k not in al.pairs]
    lone_b = [k for k in range(len(b.tokens)) if k != j and k not in al.used_b]
    if not (a.org or b.org):
        if any(a.tokens[k].kind == WORD for k in lone_a) or any(
            b.tokens[k].kind == WORD for k in lone_b
        ):
            return f"the names share only {x!r}: one name of a person's several identifies no one"
        return None
    if any(
        _distinctive(a.tokens[k].text, al.wa[k]) for k in lone_a if a.tokens[k].kind == WORD
    ) or any(_distinctive(b.tokens[k].text, al.wb[k]) for k in lone_b if b.tokens[k].kind == WORD):
        return f"the names share only {x!r}, and each has distinctive words the other lacks"
    if _common(x) and _common(y) and (lone_a or lone_b):
        return f"the names share only {x!r}, a common word, and differ in the rest"
    return None


def _distinctive(word: str, weight: float) -> bool:
    """A word that sets a name apart: rare in the lists, and not a misspelt
    generic word or legal form ("Corporatoin", "Limtied")."""
    return weight >= 0.5 and not _misspelt_generic(word)


@cache
def _misspelt_generic(word: str) -> bool:
    from rapidfuzz import process

    return (
        len(word) >= 5
        and process.extractOne(
            word, GENERIC_WORDS, scorer=OSA.normalized_similarity, score_cutoff=0.8
        )
        is not None
    )


def _not_a_slip(x: str, y: str) -> bool:
    """Whether two alike words are unlikely to be one word mistyped: short
    words changed other than by a swap of neighbouring letters, or words
    further apart than a slip (two edits below nine letters: "Glaukos" and
    "GLAUCUS", "Outfront" and "SOUTHFRONT")."""
    if _swap(x, y):
        return False
    short = min(len(x), len(y))
    return short <= SHORT_WORD or OSA.distance(x, y) > (1 if short < 9 else 2)


def another_word(c: Comparison) -> str | None:
    """Why a screening's hit is held: its only alike words differ by an edit
    and the screened word is a word of its own (English, or a brand common
    enough to be in English text: "Walmart" for "WELMART", "Progress" for
    "PROGRES") — a slip of the keyboard rarely makes another real word. Not
    symmetric (the screened name is the one typed), so applied by the
    screening, not by the pair score."""
    kinds = {t.text: t.kind for t in c.query.tokens}
    other = {t.text: t.kind for t in c.candidate.tokens}
    alike = [
        (x, y)
        for x, y, s in c.pairs
        if s >= SHARED_WORD and kinds.get(x) == WORD and other.get(y) == WORD
    ]
    if alike and all(x != y and not _swap(x, y) and _known(x) for x, y in alike):
        x, y = alike[0]
        return f"{x!r} is a word of its own, not a slip for {y!r}"
    return None


def _known(word: str) -> bool:
    return _zipf(word) >= KNOWN_ZIPF


class Matcher:
    """Scores pairs of names. Holds the token weights of the lists it screens
    against (or none: every unknown word is rare) and the published scoring."""

    def __init__(self, weights: TokenWeights | None = None, scoring: Scoring | None = None):
        self.weights = weights or TokenWeights()
        self.scoring = scoring or default_scoring()

    @property
    def threshold(self) -> float:
        return self.scoring.threshold

    @property
    def version(self) -> str:
        return self.scoring.version

    def describe(self) -> dict[str, Any]:
        """The matcher as ``GET /v1/screen/algorithms`` shows it: version,
        threshold, features and weights, the rules that hold a score below the
        threshold, how it was fitted and what was measured."""
        sc = self.scoring
        return {
            "name": MATCHER,
            "version": sc.version,
            "default_threshold": sc.threshold,
            "description": (__doc__ or "").strip(),
            "features": {f: FEATURE_TEXT[f] for f in FEATURES},
            "weights": {
                k: {"bias": m.bias, "weights": m.weights}
                for k, m in (("person", sc.person), ("organisation", sc.org))
            },
            "held_below_threshold": [
                "the names share no distinctive word",
                "the only alike words differ by more than a slip of the keyboard (short words "
                f"of up to {SHORT_WORD} letters changed other than by a swap of neighbouring "
                "letters, two edits apart below nine letters, or the screened word an English "
                f"word of its own, Zipf >= {KNOWN_ZIPF})",
                "two organisations share a single word and either has a distinctive word the "
                "other lacks; two people share a single name and either has another",
                f"two organisations share a single common English word (Zipf >= {COMMON_ZIPF}) "
                "and differ in anything else",
                "the hit is through an alias the list marks weak (OFAC), unless the names are "
                "the same word for word and at least four letters long",
            ],
            "not_screened_as_people": (
                "names with a legal form, and names in Chinese characters not shaped like a "
                "Chinese personal name (two to four characters, a common family name first)"
            ),
            "fitted": sc.provenance,
            "measured": sc.measured,
        }

    def align(self, a: Name, b: Name) -> Alignment:
        """Pair the tokens of two names, best pairs first (similarity times the
        weights of both tokens), each token at most once."""
        person = not (a.org or b.org)
        wa = [self.weights.weight(t.text, t.kind) for t in a.tokens]
        wb = [self.weights.weight(t.text, t.kind) for t in b.tokens]
        cand = []
        for i, ta in enumerate(a.tokens):
            for j, tb in enumerate(b.tokens):
                if (ta.kind == PLACE) != (tb.kind == PLACE) and ta.text != tb.text:
                    continue  # a place is only ever the same place
                s = token_similarity(ta.text, tb.text, person)
                if s >= ALIGN:
                    cand.append((s * (wa[i] + wb[j]), s, i, j))
        cand.sort(reverse=True)
        pairs: dict[int, tuple[int, float]] = {}
        used_b: set[int] = set()
        for _, s, i, j in cand:
            if i not in pairs and j not in used_b:
                pairs[i] = (j, s)
                used_b.add(j)
        return Alignment(wa, wb, pairs, used_b)

    def features(self, a: Name, b: Name) -> tuple[dict[str, float], tuple, bool]:
        """The features of a pair of names (align, then measure the alignment,
        then the names as whole strings), the aligned token pairs, and whether
        the names share a word at all."""
        feats, pairs, shared, _ = self._measure(a, b)
        return feats, pairs, shared

    def _measure(self, a: Name, b: Name) -> tuple[dict[str, float], tuple, bool, Alignment]:
        al = self.align(a, b)
        cov_a, cov_b = al.coverage()
        weakest, edits, shared = _weakest_pair(a, b, al)
        extra, minor = _unpaired(a, b, al)
        order = _word_order(a, b, al)
        ka = a.distinctive or a.texts  # the names as one string, distinctive words only
        kb = b.distinctive or b.texts
        joined = max(
            Levenshtein.normalized_similarity("".join(ka), "".join(kb)),
            Levenshtein.normalized_similarity("".join(sorted(ka)), "".join(sorted(kb))),
        )
        if joined >= JOINED and (a.distinctive or b.distinctive):
            shared = True
            if len(ka) != len(kb):
                # "Good Will" and "Goodwill", "Meituan Dianping" and 美团点评: the
                # same words written apart or together align as a whole
                cov_a, cov_b = max(cov_a, joined), max(cov_b, joined)
                weakest = max(weakest, joined)
                extra = 0
                edits = min(edits, Levenshtein.distance("".join(ka), "".join(kb)))
        if not shared and _acronym(a, b):
            # "PLA" and "People's Liberation Army", "BYD" and 比亚迪: the one word of
            # one name stands for all of the other, as if aligned word for word
            shared = True
            cov_a = cov_b = weakest = joined = order = 1.0
            extra = edits = 0
        na = {t.text for t in a.tokens if t.kind == NUMBER}
        nb = {t.text for t in b.tokens if t.kind == NUMBER}
        pairs = tuple(
            (a.tokens[i].text, b.tokens[j].text, s) for i, (j, s) in sorted(al.pairs.items())
        )
        feats = {
            "coverage_min": min(cov_a, cov_b),
            "coverage_max": max(cov_a, cov_b),
            "weakest_pair": weakest,
            "extra_words": float(min(extra, 3)),
            "extra_minor": float(min(minor, 3)),
            "joined": joined,
            "number_mismatch": 1.0 if na and nb and na != nb else 0.0,
            "order": order,
            "native_difference": _native_difference(a.raw, b.raw),
            "weakest_edits": float(min(edits, 3)),
        }
        return feats, pairs, shared, al

    def compare(self, a: Name | str, b: Name | str, schema: str = "Company") -> Comparison:
        na = a if isinstance(a, Name) else normalize(a, schema)
        nb = b if isinstance(b, Name) else normalize(b, schema)
        feats, pairs, shared, al = self._measure(na, nb)
        logit, terms = self.scoring.model(na.org or nb.org).logit(feats)
        score = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))
        c = Comparison(score, feats, terms, pairs, shared, na, nb)
        limit = _thin_evidence(na, nb, al) if shared else "the names share no distinctive word"
        return self.hold(c, limit) if limit else c

    def hold(self, c: Comparison, why: str) -> Comparison:
        """``c`` held below the threshold, for the reason ``why`` (the first
        reason it was held for stays)."""
        return dataclasses.replace(
            c, score=min(c.score, max(0.0, self.threshold - CAP_BELOW)), limit=c.limit or why
        )

    def score(self, a: str, b: str, schema: str = "Company") -> float:
        return self.compare(a, b, schema).score
