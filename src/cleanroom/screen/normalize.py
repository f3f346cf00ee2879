"""Names to comparable tokens: Unicode folding, transliteration (Chinese to
pinyin through a term table first, everything else through ``anyascii``),
legal forms treated as one, Chinese brand names and acronyms mapped to one
token, and every token classed (distinctive word, generic word, place, legal
form, particle) so the matcher can weight it.

The term table is ``data/zh_terms.tsv`` (documented in the file itself).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

from anyascii import anyascii

# Kinds of token.
WORD = "word"  # distinctive (its weight comes from how rare it is in the lists)
GENERIC = "generic"  # a word many names share ("technology", "international")
PLACE = "place"  # a place prefix ("hangzhou", "beijing")
PARTICLE = "particle"  # name particles and function words ("al", "bin", "of")
LEGAL = "legal"  # a legal form; all are one class and never make a match
NUMBER = "number"

ORG_SCHEMAS = frozenset({"Company", "Organization", "LegalEntity", "Vessel", "Airplane", "entity"})


def _words(text: str) -> list[str]:
    return text.split()


# Legal forms after normalisation (lower case, punctuation gone), longest first.
_LEGAL_PHRASES = """
gesellschaft mit beschrankter haftung|aktiengesellschaft|kommanditgesellschaft|sp z o o
spolka z o o|spolka z ograniczona odpowiedzialnoscia|spolka akcyjna|sociedad anonima
sociedad limitada|societe anonyme|societe a responsabilite limitee|societa per azioni
societa a responsabilita limitata|obshchestvo s ogranichennoy otvetstvennostyu
aktsionernoe obshchestvo|otkrytoe aktsionernoe obshchestvo|zakrytoe aktsionernoe obshchestvo
publichnoe aktsionernoe obshchestvo|kabushiki kaisha|yugen kaisha|company limited by shares
limited company|ltd liability co|public company limited|gmbh co kg|sp zoo|spzoo|sarl|sa de cv
s de rl de cv|s de rl|sp k|sca|ab|oy|aps|sro|kft|zrt|doo|ead|public joint stock company
open joint stock company|closed joint stock company|joint stock company
limited liability company|limited liability partnership|limited partnership
public limited company|company limited|co limited|co ltd|corp ltd|pvt ltd|private limited
pte ltd|pty ltd|sdn bhd|co inc|s a de c v|sa de cv|s de rl|s a|s r l|s p a|s a s|b v|n v|a g|l p
l l c|p l c|g m b h|joint stock|company|co|corp|corporation|incorporated|inc|limited|ltd|llc|llp
lp|plc|gmbh|ag|sa|spa|srl|bv|nv|oao|ojsc|zao|cjsc|pjsc|jsc|ooo|pao|ao|tov|pat|ltda|sarl|sas|kg
kk|pte|pty|bhd|fzco|fze|fzc|lc|jv
""".replace("\n", "|")

# Words too common in company names to identify anyone on their own.
_GENERIC = _words("""
technology technologies tech science sciences scientific international intl group holding holdings
industrial industries industry trading trade traders development digital information network
networks communication communications telecommunication telecommunications telecom electronics
electronic electric engineering systems system services service products product manufacturing
enterprise enterprises investment investments global import export general research institute
academy bank financial finance capital management partners partner solutions resources energy
commercial logistics shipping transport marine construction equipment software intelligent data
new china chinese national state united american america world worldwide center centre office
agency association foundation cooperative union company firm mobile cloud computing security
video media materials power petroleum chemical chemicals university school college laboratory
laboratories lab labs ventures venture associates consulting consultants advisors advisory
brothers sons studio studios store stores shop market markets retail wholesale supply supplies
design designs marketing fund funds properties property realty estate housing hotel hotels travel
tours express com net org social society charity charitable relief welfare cultural
education educational public community people peoples youth human rights humanitarian aid
semiconductor semiconductors integrated circuit circuits
keji jishu tongxun chuangxin jituan gufen youxian gongsi youxiangongsi konggu kongu shiye maoyi
dianzi wangluo xinxi guoji zhongguo fazhan touzi zhineng shuzi kexue gongye zhizao
""")  # (the last two lines: the same words in pinyin, as names are written in Latin letters)

_PARTICLES = _words("""
al el bin ibn bint abu abd ul ur ud van von der den de del della di da dos das du la le of the and
for y e und et
""")

_ROMAN = {
    "i": "1", "ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6", "vii": "7", "viii": "8",
    "ix": "9", "x": "10", "xi": "11", "xii": "12",
}  # fmt: skip
_ORDINALS = {
    "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5", "sixth": "6",
    "seventh": "7", "eighth": "8", "ninth": "9", "tenth": "10", "one": "1", "two": "2",
    "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
    "ten": "10", "1st": "1", "2nd": "2", "3rd": "3", "4th": "4", "5th": "5",
}  # fmt: skip

# The most common Chinese family names (single and double characters): a name
# in Chinese characters that starts with none of them is not a person's.
SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾毛"
    "郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞"
    "左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈"
    "饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟"
    "邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
) | frozenset(("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐"))

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_SPLIT = re.compile(r"[^a-z0-9]+")


def chinese_only(text: str) -> bool:
    """Whether a name is written in Chinese characters alone (spaces aside)."""
    return _HAN.fullmatch("".join(text.split())) is not None


@dataclass(frozen=True)
class Token:
    """A token of a normalised name and its kind (word, generic, number, place)."""

    text: str
    kind: str


@dataclass(frozen=True)
class Name:
    """A normalised name: its tokens (legal forms left out, but remembered)."""

    raw: str
    tokens: tuple[Token, ...]
    legal: tuple[str, ...]
    org: bool
    # initials of the pinyin syllables of Chinese words the term table does not
    # know (比亚迪 -> "byd"): Chinese brands are often abbreviated so
    acronyms: tuple[str, ...] = ()

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(t.text for t in self.tokens)

    @property
    def key(self) -> str:
        """The tokens joined: what the candidate prefilter compares."""
        return " ".join(self.texts)

    @property
    def distinctive(self) -> tuple[str, ...]:
        return tuple(t.text for t in self.tokens if t.kind in (WORD, NUMBER))


@dataclass(frozen=True)
class _Terms:
    """The term tables normalisation uses (Chinese and Latin forms, by kind)."""

    han: dict[str, tuple[str, str]]  # Chinese form -> (kind, canonical)
    latin: dict[tuple[str, ...], tuple[str, str]]  # token sequence -> (kind, canonical)
    longest_han: int
    longest_latin: int


@cache
def _terms() -> _Terms:
    han: dict[str, tuple[str, str]] = {}
    latin: dict[tuple[str, ...], tuple[str, str]] = {}
    text = resources.files("cleanroom.screen").joinpath("data/zh_terms.tsv").read_text("utf-8")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, canonical, forms = line.split("\t")
        for form in [canonical, *forms.split("|")]:
            if _HAN.search(form):
                han[form] = (kind, canonical)
            elif kind in ("brand", "place"):
                toks = tuple(t for t in _SPLIT.split(form.lower()) if t)
                latin.setdefault(toks, (kind, canonical))
    for phrase in _LEGAL_PHRASES.split("|"):
        toks = tuple(phrase.split())
        if toks:
            latin.setdefault(toks, ("legal", "company"))
    return _Terms(
        han,
        latin,
        max(len(k) for k in han),
        max(len(k) for k in latin),
    )


def _han_segments(run: str, org: bool) -> list[str]:
    """A run of Chinese characters as Latin words: known terms by longest match,
    the rest in pinyin (one word per unknown stretch; for people, surname apart)."""
    from pypinyin import lazy_pinyin  # its dictionary loads on first use only

    terms = _terms()
    if not org:
        syllables = lazy_pinyin(run)
        if 2 <= len(syllables) <= 4:
            return [syllables[0], "".join(syllables[1:])]
        return ["".join(syllables)]
    out: list[str] = []
    pending = ""
    i = 0
    while i < len(run):
        for n in range(min(terms.longest_han, len(run) - i), 0, -1):
            hit = terms.han.get(run[i : i + n])
            if hit:
                if pending:
                    out.extend(_pinyin(pending))
                    pending = ""
                kind, canonical = hit
                if kind == "word":  # translated words meet the Latin term table too
                    out.extend(canonical.split())
                else:
                    out.append(f"\x00{kind}\x00{canonical}")
                i += n
                break
        else:
            if run[i] in _PLACE_SUFFIX and not pending and out and out[-1].startswith("\x00place"):
                i += 1  # 深圳市: the city of Shenzhen is Shenzhen
                continue
            pending += run[i]
            i += 1
    if pending:
        out.extend(_pinyin(pending))
    return out


_PLACE_SUFFIX = frozenset("市省区县")


def _pinyin(run: str) -> list[str]:
    """An unknown stretch of Chinese: its pinyin as one word, then a marker with
    the syllables' initials (an acronym the name may go by)."""
    from pypinyin import lazy_pinyin

    syllables = lazy_pinyin(run)
    out = ["".join(syllables)]
    if len(syllables) >= 2:
        out.append("\x00acronym\x00" + "".join(x[0] for x in syllables if x))
    return out


def fold(text: str) -> str:
    """Unicode compatibility folding, lower case, accents and scripts to ASCII."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return anyascii(text).lower()


_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z][a-z])")
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}  # fmt: skip
_ABBREVIATIONS = {"intl": "international", "int": "international", "natl": "national",
                  "dept": "department", "mfg": "manufacturing", "bros": "brothers",
                  "assn": "association", "univ": "university", "inst": "institute"}  # fmt: skip


def _latin_tokens(text: str) -> list[str]:
    text = _CAMEL.sub(" ", text)  # "SergeiLavrov" is two words
    text = text.replace("&", " and ").replace("'", "").replace("`", "").replace("’", "")
    words = [_ABBREVIATIONS.get(t, t) for t in _SPLIT.split(fold(text)) if t]
    out: list[str] = []
    for w in words:  # "forty four", "forty-4" -> "44"
        ones = _ORDINALS.get(w, w)
        if out and out[-1] in _TENS and ones.isdigit() and len(ones) == 1:
            out[-1] = str(_TENS[out[-1]] + int(ones))
        else:
            out.append(w)
    return [str(_TENS[w]) if w in _TENS else w for w in out]


def _person_order(raw: str) -> str:
    """ "Surname, Given names" (the lists' convention) to "Given names Surname"."""
    if raw.count(",") == 1:
        surname, given = raw.split(",")
        if surname.strip() and given.strip():
            return f"{given.strip()} {surname.strip()}"
    return raw


def normalize(raw: str, schema: str = "Company", *, typos: bool = False) -> Name:
    """Normalise one name. ``schema`` (FollowTheMoney style: Person, Company,
    Organization, LegalEntity, Vessel...) decides whether company rules apply.
    ``typos``: a name someone typed (a screening's query, not a listed name):
    a brand of several words in the term table is recognised with one of its
    words mistyped ("China Moblie" is China Mobile)."""
    org = schema in ORG_SCHEMAS
    text = raw if org else _person_order(raw)
    pieces: list[str] = []
    pos = 0
    for m in _HAN.finditer(text):
        pieces.extend(_latin_tokens(text[pos : m.start()]))
        pieces.extend(_han_segments(m.group(), org))
        pos = m.end()
    pieces.extend(_latin_tokens(text[pos:]))
    return _classify(raw, pieces, org, typos)


def _join_initials(pieces: list[str]) -> list[str]:
    """Single letters in a row are one word in a company name ("L.X.C." = "LXC")."""
    out: list[str] = []
    run = ""
    for p in pieces:
        if len(p) == 1 and p.isalpha():
            run += p
            continue
        if run:
            out.append(run)
            run = ""
        out.append(p)
    if run:
        out.append(run)
    return out


def _classify(raw: str, pieces: list[str], org: bool, typos: bool = False) -> Name:
    terms = _terms()
    if org:
        pieces = _join_initials(pieces)
    tokens: list[Token] = []
    legal: list[str] = []
    acronyms = [p.split("\x00")[2] for p in pieces if p.startswith("\x00acronym\x00")]
    pieces = [p for p in pieces if not p.startswith("\x00acronym\x00")]
    i = 0
    n = len(pieces)
    while i < n:
        p = pieces[i]
        if p.startswith("\x00"):
            _, kind, canonical = p.split("\x00")
            _emit(tokens, legal, kind, canonical)
            i += 1
            continue
        if org:
            hit = None
            for k in range(min(terms.longest_latin, n - i), 0, -1):
                seq = tuple(pieces[i : i + k])
                if any(s.startswith("\x00") for s in seq):
                    continue
                hit = terms.latin.get(seq)
                if hit:
                    # a legal form only counts at the edges or before another one
                    if hit[0] == "legal" and not _legal_position(pieces, i, k):
                        hit = None
                        continue
                    i += k
                    break
            if not hit and typos:
                found = _mistyped_term(pieces, i)
                if found:
                    hit, k = found
                    i += k
            if hit:
                _emit(tokens, legal, *hit)
                continue
        tokens.append(Token(*_word(p, org)))
        i += 1
    if not tokens and legal:  # a name that is only a legal form keeps it
        tokens = [Token(x, GENERIC) for x in legal]
    return Name(raw, tuple(tokens), tuple(legal), org, tuple(acronyms))


def _mistyped_term(pieces: list[str], i: int) -> tuple[tuple[str, str], int] | None:
    """A brand of two or more words of the term table at ``pieces[i:]`` with
    exactly one word mistyped (one edit, or a swap of neighbouring letters, in
    a word of five letters or more; every other word exact), and its length."""
    from rapidfuzz.distance import OSA

    for k in range(min(_terms().longest_latin, len(pieces) - i), 1, -1):
        seq = pieces[i : i + k]
        if any(x.startswith("\x00") for x in seq):
            continue
        for term, hit in _brands_by_shape().get((k, tuple(x[0] for x in seq)), ()):
            wrong = [(x, y) for x, y in zip(seq, term, strict=True) if x != y]
            if len(wrong) == 1 and min(map(len, wrong[0])) >= 5 and OSA.distance(*wrong[0]) == 1:
                return hit, k
    return None


@cache
def _brands_by_shape() -> dict[
    tuple[int, tuple[str, ...]], list[tuple[tuple[str, ...], tuple[str, str]]]
]:
    """The term table's brands of two or more words, by word count and initials."""
    out: dict = {}
    for term, hit in _terms().latin.items():
        if hit[0] == "brand" and len(term) >= 2:
            out.setdefault((len(term), tuple(x[0] for x in term)), []).append((term, hit))
    return out


def _legal_position(pieces: list[str], i: int, k: int) -> bool:
    """Legal forms are prefixes or suffixes ("OAO Gazprom", "Huawei Co Ltd",
    "Hytera Communications Corporation Limited"), not words in the middle of
    a name ("Saudi Arabian Oil Company" ends with one; "Company for Trade X"
    starts with one)."""
    rest = pieces[i + k :]
    return i == 0 or not rest or all(len(p) <= 4 or (p,) in _LEGAL_WORDS for p in rest)


def _emit(tokens: list[Token], legal: list[str], kind: str, canonical: str) -> None:
    if kind == "legal":
        legal.append(canonical)
    elif kind == "brand":
        tokens.append(Token(canonical, WORD))
    elif kind == "place":
        tokens.extend(Token(w, PLACE) for w in canonical.split())
    else:  # a translated word
        tokens.extend(Token(*_word(w, True)) for w in canonical.split())


def _word(p: str, org: bool) -> tuple[str, str]:
    if p.isdigit():
        return p.lstrip("0") or "0", NUMBER
    if p in _ORDINALS:
        return _ORDINALS[p], NUMBER
    if org and p in _ROMAN and p != "i":
        return _ROMAN[p], NUMBER
    if p in _PARTICLES:
        return p, PARTICLE
    if org and p in _GENERIC_SET:
        return p, GENERIC
    return p, WORD


_GENERIC_SET = frozenset(_GENERIC)
# generic words and one-word legal forms (what a misspelt word may have meant)
GENERIC_WORDS = tuple(
    sorted(_GENERIC_SET | {p for p in _LEGAL_PHRASES.split("|") if " " not in p and len(p) >= 4})
)
_LEGAL_WORDS = frozenset(tuple(p.split()) for p in _LEGAL_PHRASES.split("|") if p.strip())
