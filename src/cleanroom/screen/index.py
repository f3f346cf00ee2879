"""Screening one name against loaded lists, fast: an inverted index from
tokens to listed names, a fuzzy lookup of each query word in the lists'
vocabulary (rapidfuzz, only over words of comparable length, cached), the
candidates ranked by the weight of the words they share, and the matcher run
on the best of them only.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import OSA

from cleanroom.screen.errors import ScreeningInputError
from cleanroom.screen.lists import ListSnapshot, Party, bundled_snapshots, weak_aliases
from cleanroom.screen.matcher import Comparison, Matcher, Scoring, TokenWeights, another_word
from cleanroom.screen.normalize import NUMBER, SURNAMES, WORD, Name, chinese_only, normalize

MAX_NAME_CHARS = 500
CANDIDATES = 40  # names the matcher scores per query
FUZZY = 0.7  # how similar a vocabulary word must be to count as the query's word
SCHEMAS = ("any", "Person", "Company", "Organization", "LegalEntity", "Vessel", "Airplane")


def schema_of(party: Party) -> str:
    return {"individual": "Person", "vessel": "Vessel", "aircraft": "Airplane"}.get(
        party.kind, "Company"
    )


@dataclass(frozen=True)
class Entry:
    """One listed name (a party's primary name or one of its aliases)."""

    list_id: str
    version: str
    party: Party
    text: str
    name: Name
    alias: bool
    weak: bool = False  # an alias the list marks weak: never an alert on its own


@dataclass(frozen=True)
class Hit:
    """A list entry a name matched, with the comparison behind it."""

    entry: Entry
    comparison: Comparison

    @property
    def score(self) -> float:
        return self.comparison.score

    def as_json(self, *, explain: bool = True) -> dict[str, Any]:
        p = self.entry.party
        out: dict[str, Any] = {
            "list": self.entry.list_id,
            "list_version": self.entry.version,
            "party_id": p.id,
            "listed_name": p.name,
            "matched_name": self.entry.text,
            "alias": self.entry.alias,
            "kind": p.kind,
            "programs": list(p.programs),
            "countries": list(p.countries),
            "linked_to": list(p.linked_to),
            "listed_on": p.listed_on,
            "rule": p.rule,
            "score": round(self.score, 4),
            "reason": self.comparison.reason(),
        }
        if explain:
            out["explanation"] = self.comparison.explain()
        return out


def could_be_person(name: str, as_org: Name) -> bool:
    """Whether a name of unknown schema may be a person's: not when it carries a
    legal form ("Nestle SA", "Huawei Co Ltd"), nor when it is written in Chinese
    characters and is not shaped like a Chinese personal name (two to four
    characters, a family name first: 伊利 and 京东 are brands, 李宁 may be a man)."""
    if as_org.legal:
        return False
    if chinese_only(name):
        han = "".join(name.split())
        return 2 <= len(han) <= 4 and (han[:1] in SURNAMES or han[:2] in SURNAMES)
    return True


def _same_key(a: Name, b: Name) -> bool:
    """The same name, word for word, and not a short one (a weak alias counts
    only so: "AVIC" for AVIC, never "Ford" for "FRD")."""
    return a.key == b.key and len(a.key.replace(" ", "")) >= 4


def check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise ScreeningInputError("a name to screen is a string")
    name = " ".join(name.split())
    if not name:
        raise ScreeningInputError("the name to screen is empty")
    if len(name) > MAX_NAME_CHARS:
        raise ScreeningInputError(f"the name is {len(name)} characters; at most {MAX_NAME_CHARS}")
    return name


def check_batch(queries: list[tuple[str, str]], limit: int, where: Callable[[int], str]) -> None:
    """Check every (name, schema) of a batch before any is screened; an error
    names the row (``where(n)``, n counting from 0)."""
    if len(queries) > limit:
        raise ScreeningInputError(
            f"a batch has at most {limit:,} names; this one has {len(queries):,}",
            hint="split it",
        )
    for n, (name, schema) in enumerate(queries):
        try:
            check_name(name)
            check_schema(schema)
        except ScreeningInputError as e:
            raise ScreeningInputError(f"{where(n)}: {e.message}", hint=e.hint) from None


def check_schema(schema: str) -> str:
    if schema not in SCHEMAS:
        raise ScreeningInputError(f"unknown schema {schema!r}", hint=f"one of {', '.join(SCHEMAS)}")
    return schema


class ListIndex:
    """The names of a set of list snapshots, indexed for screening."""

    def __init__(self, snapshots: Iterable[ListSnapshot], scoring: Scoring | None = None) -> None:
        self.snapshots = tuple(snapshots)
        entries: list[Entry] = []
        for snap in self.snapshots:
            for party in snap.parties:
                if party.kind == "category":
                    continue
                schema = schema_of(party)
                weak = weak_aliases(party)
                for k, text in enumerate((party.name, *party.aliases)):
                    entries.append(
                        Entry(
                            snap.list_id, snap.version, party, text,
                            normalize(text, schema), k > 0, k > 0 and text in weak,
                        )
                    )  # fmt: skip
        self.entries = tuple(entries)
        self.weights = TokenWeights.from_names(e.name for e in entries)
        self.matcher = Matcher(self.weights, scoring)
        postings: dict[str, list[int]] = defaultdict(list)
        for i, e in enumerate(entries):
            for t in {t.text for t in e.name.tokens if t.kind in (WORD, NUMBER)}:
                postings[t].append(i)
        self._postings = dict(postings)
        # the vocabulary by length, one list: a query word is compared with the
        # words of comparable length in one rapidfuzz call
        self._vocab = sorted(self._postings, key=lambda w: (len(w), w))
        lengths = [len(w) for w in self._vocab]
        self._from_len = [bisect_left(lengths, n) for n in range(max(lengths, default=0) + 2)]
        self._similar = lru_cache(maxsize=50_000)(self._similar_words)

    @property
    def versions(self) -> dict[str, str]:
        return {s.list_id: s.version for s in self.snapshots}

    def __len__(self) -> int:
        return len(self.entries)

    def _similar_words(self, word: str) -> tuple[tuple[str, float], ...]:
        """The list words a query word may stand for: itself when the lists
        have it (a word the lists spell so is not taken for a slip), else the
        words of comparable length within the fuzzy cutoff."""
        if word.isdigit() or len(word) <= 2 or word in self._postings:
            return ((word, 1.0),) if word in self._postings else ()
        lo, hi = int(len(word) * FUZZY), int(len(word) / FUZZY) + 1
        out: list[tuple[str, float]] = []
        top = len(self._from_len) - 1
        words = self._vocab[self._from_len[min(lo, top)] : self._from_len[min(hi + 1, top)]]
        per_length: dict[int, int] = defaultdict(int)
        for w, s, _ in process.extract(
            word, words, scorer=OSA.normalized_similarity, score_cutoff=FUZZY, limit=None
        ):  # best first; at most 20 of each length, as before
            if w != word and per_length[len(w)] < 20:
                per_length[len(w)] += 1
                out.append((w, s))
        return tuple(out)

    def candidates(self, query: Name, limit: int = CANDIDATES) -> list[int]:
        weight: dict[int, float] = defaultdict(float)
        words = [t for t in query.tokens if t.kind in (WORD, NUMBER)]
        for t in words:
            w = self.weights.weight(t.text, t.kind)
            best: dict[int, float] = {}
            for other, sim in self._similar(t.text):
                for i in self._postings.get(other, ()):
                    if sim > best.get(i, 0.0):
                        best[i] = sim
            for i, sim in best.items():
                weight[i] += w * sim
        if not weight and not words:  # nothing distinctive: the whole key instead
            return []
        ranked = sorted(weight.items(), key=lambda kv: -kv[1])
        return [i for i, _ in ranked[:limit]]

    def screen(self, name: str, schema: str = "any", *, limit: int = 10) -> list[Hit]:
        """Listed names like ``name``, best first, each party once (its best name)."""
        name = check_name(name)
        schema = check_schema(schema)
        queries: dict[bool, Name] = {}
        if schema != "Person":
            queries[True] = normalize(name, "Company" if schema == "any" else schema, typos=True)
        if schema == "Person" or (schema == "any" and could_be_person(name, queries[True])):
            queries[False] = normalize(name, "Person")
        seen: set[int] = set()
        best: dict[tuple[str, str], Hit] = {}
        for org, q in queries.items():
            for i in self.candidates(q):
                e = self.entries[i]
                if i in seen or e.name.org != org:  # people with people, bodies with bodies
                    continue
                seen.add(i)
                c = self.matcher.compare(q, e.name)
                if e.weak and not _same_key(q, e.name):
                    c = self.matcher.hold(c, f"{e.text!r} is an alias the list marks weak")
                elif c.score >= self.matcher.threshold and (why := another_word(c)):
                    c = self.matcher.hold(c, why)
                key = (e.list_id, e.party.id)
                if key not in best or c.score > best[key].score:
                    best[key] = Hit(e, c)
        hits = sorted(best.values(), key=lambda h: (-h.score, h.entry.party.id))
        return hits[:limit]

    def party(self, list_id: str, party_id: str) -> Party | None:
        for s in self.snapshots:
            if s.list_id == list_id:
                return s.by_id().get(party_id)
        return None


@cache
def bundled_index() -> ListIndex:
    return ListIndex(bundled_snapshots())


def list_weights(snapshots: Iterable[ListSnapshot]) -> TokenWeights:
    """Token weights of the names of some lists."""
    return TokenWeights.from_names(
        normalize(text, schema_of(p))
        for s in snapshots
        for p in s.parties
        if p.kind != "category"
        for text in (p.name, *p.aliases)
    )
