"""An embedded English→German-like parallel corpus: no download, real linguistic phenomena.

The default corpus of the quickstart and the tests. A seeded generator produces sentence pairs
from a small grammar whose German side has what makes En→De translation hard:

- reordering: verb-second after a fronted adverb ("yesterday the dog sees ..." → "gestern sieht
  der Hund ..."), the infinitive at the end after modals/future ("will see the cat" → "wird die
  Katze sehen"), verb-final subordinate clauses ("because it sees the cat" → "weil es die Katze
  sieht");
- agreement: three genders, nominative/accusative/dative articles and adjective endings
  (weak/mixed/strong), plural classes, dative plural -n, verb conjugation by person and number,
  prepositions that govern case;
- compounding: English noun-noun phrases become one German word with the head's gender
  ("the garden door" → "die Gartentür"-like forms);
- a lexicon of a few thousand words drawn with Zipfian frequencies (as in real text: a small
  model gets the frequent words right quickly and the rare ones slowly); most German words are
  cognates derived from the English ones by regular sound shifts (as real ones are), the rest
  are unrelated, so both subword sharing and memorisation matter.

The lexicon is fixed (`LEXICON_SEED`): every corpus speaks the same language; the `seed`
argument only changes which sentences are drawn, so train/dev/test differ but agree.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

LEXICON_SEED = 20171016  # the Swish paper's arXiv date; any fixed value works

_ONSETS = [
    "b",
    "bl",
    "br",
    "d",
    "dr",
    "f",
    "fl",
    "fr",
    "g",
    "gl",
    "gr",
    "h",
    "k",
    "kl",
    "kr",
    "l",
    "m",
    "n",
    "p",
    "pl",
    "pr",
    "r",
    "s",
    "sl",
    "sm",
    "sn",
    "sp",
    "st",
    "str",
    "t",
    "tr",
    "v",
    "w",
]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "oo", "ou"]
_CODAS = ["", "", "n", "r", "l", "m", "t", "st", "nd", "rk", "ck", "ng", "sh", "th", "p"]
# English → German-like sound shifts applied to cognates (th→d, sh→sch, p→pf at onset, ...).
_SHIFTS = (
    ("ck", "k"),
    ("th", "d"),
    ("sh", "sch"),
    ("ee", "ie"),
    ("oo", "u"),
    ("ou", "au"),
    ("ea", "e"),
    ("v", "f"),
    ("y", "ig"),
)
_CASES = ("nom", "acc", "dat")
_DEF = {
    "nom": ("der", "die", "das", "die"),
    "acc": ("den", "die", "das", "die"),
    "dat": ("dem", "der", "dem", "den"),
}
_INDEF = {
    "nom": ("ein", "eine", "ein"),
    "acc": ("einen", "eine", "ein"),
    "dat": ("einem", "einer", "einem"),
}
_PRONOUNS = (
    ("I", "ich", 0),
    ("you", "du", 1),
    ("he", "er", 2),
    ("she", "sie", 2),
    ("it", "es", 2),
    ("we", "wir", 3),
    ("they", "sie", 5),
)
_DE_ENDINGS = ("e", "st", "t", "en", "t", "en")  # ich du er wir ihr sie
_MODALS = (
    ("will", ("werde", "wirst", "wird", "werden", "werdet", "werden")),
    ("can", ("kann", "kannst", "kann", "können", "könnt", "können")),
    ("must", ("muss", "musst", "muss", "müssen", "müsst", "müssen")),
)
_PREPS = (
    ("with", "mit", "dat"),
    ("for", "für", "acc"),
    ("without", "ohne", "acc"),
    ("from", "von", "dat"),
    ("to", "zu", "dat"),
    ("against", "gegen", "acc"),
)
_CONJS = (("because", "weil"), ("when", "wenn"), ("although", "obwohl"), ("that", "dass"))


@dataclass(frozen=True)
class Noun:
    en: str
    de: str
    gender: int  # 0 masculine, 1 feminine, 2 neuter
    plural: str  # German plural suffix


@dataclass(frozen=True)
class Lexicon:
    nouns: tuple[Noun, ...]
    verbs: tuple[tuple[str, str], ...]  # (English base, German stem)
    adjectives: tuple[tuple[str, str], ...]
    adverbs: tuple[tuple[str, str], ...]

    @property
    def size(self) -> int:
        return len(self.nouns) + len(self.verbs) + len(self.adjectives) + len(self.adverbs)


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
    )


def _cognate(en: str) -> str:
    de = en
    for old, new in _SHIFTS:
        de = de.replace(old, new)
    return de


@lru_cache(maxsize=4)
def lexicon(
    nouns: int = 1600, verbs: int = 500, adjectives: int = 400, adverbs: int = 60
) -> Lexicon:
    """The fixed lexicon (a few thousand words); German forms mostly cognates of English ones."""
    rng = random.Random(LEXICON_SEED)
    seen: set[str] = set()

    def pairs(n: int, lo: int, hi: int) -> list[tuple[str, str]]:
        out = []
        while len(out) < n:
            en = _word(rng, rng.randint(lo, hi))
            if en in seen or len(en) < 3:
                continue
            seen.add(en)
            de = _cognate(en) if rng.random() < 0.85 else _word(rng, rng.randint(lo, hi))
            out.append((en, de))
        return out

    noun_list = tuple(
        Noun(en, de, rng.randrange(3), rng.choice(("e", "en", "er", "s")))
        for en, de in pairs(nouns, 1, 2)
    )
    return Lexicon(
        noun_list,
        tuple(pairs(verbs, 1, 2)),
        tuple(pairs(adjectives, 1, 2)),
        tuple(pairs(adverbs, 2, 3)),
    )


def _zipf(n: int) -> list[float]:
    """Cumulative Zipf weights (rank r has weight r^-1.1) for random.choices."""
    total, out = 0.0, []
    for rank in range(1, n + 1):
        total += rank**-1.1
        out.append(total)
    return out


class _Generator:
    def __init__(self, lex: Lexicon, rng: random.Random):
        self.lex, self.rng = lex, rng
        self._weights = {
            name: _zipf(len(getattr(lex, name)))
            for name in ("nouns", "verbs", "adjectives", "adverbs")
        }

    def pick(self, kind: str):
        words = getattr(self.lex, kind)
        return self.rng.choices(words, cum_weights=self._weights[kind])[0]

    def noun_phrase(self, case: str) -> tuple[list[str], list[str], int]:
        """(English words, German words, person 2=3sg / 5=3pl) of a random noun phrase."""
        r = self.rng
        noun = self.pick("nouns")
        modifier = self.pick("nouns") if r.random() < 0.15 else None
        adjective = self.pick("adjectives") if r.random() < 0.3 else None
        plural = r.random() < 0.3
        definite = r.random() < 0.6
        en_noun = noun.en + ("s" if plural else "")
        if modifier is not None:
            en_noun = f"{modifier.en} {en_noun}"
        de_noun = (modifier.de + noun.de if modifier else noun.de).capitalize()
        if plural:
            de_noun += noun.plural
            if case == "dat" and not de_noun.endswith(("n", "s")):
                de_noun += "n"
        g = 3 if plural else noun.gender
        en, de = [], []
        if definite:
            en.append("the")
            de.append(_DEF[case][g])
            ending = "en" if plural or case == "dat" or (case == "acc" and g == 0) else "e"
        elif plural:
            ending = "en" if case == "dat" else "e"
        else:
            en.append("a")
            de.append(_INDEF[case][g])
            ending = ("er", "e", "es")[g] if case == "nom" else ("en", "e", "es")[g]
            if case == "dat":
                ending = "en"
        if adjective is not None:
            en.append(adjective[0])
            de.append(adjective[1] + ending)
        if en and en[0] == "a":
            first = adjective[0] if adjective else (modifier.en if modifier else noun.en)
            if first[0] in "aeiou":
                en[0] = "an"
        en.append(en_noun)
        de.append(de_noun)
        return en, de, 5 if plural else 2

    def subject(self) -> tuple[list[str], list[str], int]:
        if self.rng.random() < 0.35:
            en, de, person = self.rng.choice(_PRONOUNS)
            return [en], [de], person
        return self.noun_phrase("nom")

    def clause(self, kind: str) -> tuple[list[str], list[str]]:
        """kind: 'main' (verb second), 'sub' (verb final)."""
        r = self.rng
        s_en, s_de, person = self.subject()
        verb_en, verb_de = self.pick("verbs")
        o_en, o_de, _ = self.noun_phrase("acc")
        rest_en, rest_de = list(o_en), list(o_de)
        if r.random() < 0.25:
            p_en, p_de, case = r.choice(_PREPS)
            n_en, n_de, _ = self.noun_phrase(case)
            rest_en += [p_en, *n_en]
            rest_de += [p_de, *n_de]
        third_sg = person == 2
        if r.random() < 0.3:  # modal / future: infinitive goes to the end in German
            modal_en, forms = r.choice(_MODALS)
            v_en = [modal_en, verb_en]
            finite, infinite = forms[person], [verb_de + "en"]
        else:
            suffix = "es" if verb_en.endswith(("s", "sh", "ch", "x")) else "s"
            v_en = [verb_en + suffix if third_sg else verb_en]
            finite, infinite = verb_de + _DE_ENDINGS[person], []
        en = s_en + v_en + rest_en
        if kind == "sub":
            return en, s_de + rest_de + infinite + [finite]
        if r.random() < 0.25:  # fronted adverb: German inverts subject and verb (V2)
            adv_en, adv_de = self.pick("adverbs")
            return [adv_en, *en], [adv_de, finite, *s_de, *rest_de, *infinite]
        return en, s_de + [finite] + rest_de + infinite

    def sentence(self) -> tuple[str, str]:
        en, de = self.clause("main")
        if self.rng.random() < 0.25:
            c_en, c_de = self.rng.choice(_CONJS)
            sub_en, sub_de = self.clause("sub")
            en = [*en, ",", c_en, *sub_en]
            de = [*de, ",", c_de, *sub_de]
        return _surface(en), _surface(de)


def _surface(words: list[str]) -> str:
    text = " ".join(words).replace(" ,", ",") + "."
    return text[0].upper() + text[1:]


def generate(n: int, seed: int = 0, lex: Lexicon | None = None) -> Iterator[tuple[str, str]]:
    """`n` (English, German) sentence pairs drawn with `seed` from the fixed language."""
    gen = _Generator(lex or lexicon(), random.Random(f"synthetic-{seed}"))
    for _ in range(n):
        yield gen.sentence()
