"""Natural-language style captions from attribute levels, in English and Chinese.

Captions read like TextrolSpeech / PromptSpeech descriptions ("A young woman speaks slowly and
softly, with a sad tone."). A caption is built from a sentence *template* and per-attribute
*phrases*; both are chosen by a random generator seeded from ``(seed, key, language)``, so the same
clip always gets the same caption and different clips get varied ones.

Rules the writer guarantees (tests check them):

* an attribute that is missing, ``None``, empty, NaN or ``"unknown"`` is never described: no
  template slot is filled for it and no phrase of its vocabulary is used;
* every known attribute is described exactly once;
* levels outside the vocabulary are rejected with :class:`CaptionError`.

Template mini-language: ``{role:attrs}`` is a slot that describes ``attrs`` (comma list, or ``*``
for "every known style attribute no other slot took") in a grammatical ``role`` (adv, np, pred, adj,
noun); ``{subj}``, ``{pron}``, ``{poss}``, ``{gvoice}`` describe the speaker. A
``[...]`` segment is dropped when a slot inside it has nothing to describe; a template whose
*required* slot would be empty, or that would leave a known attribute undescribed, is not used
for that record.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fsclap.errors import FsclapError

STYLE_ATTRIBUTES = ("pitch", "speed", "energy", "emotion")
SPEAKER_ATTRIBUTES = ("gender", "age")
LEVELS: dict[str, tuple[str, ...]] = {
    "gender": ("female", "male"),
    "age": ("child", "young", "middle-aged", "elderly"),
    "pitch": ("low", "normal", "high"),
    "speed": ("slow", "normal", "fast"),
    "energy": ("low", "normal", "high"),
    "emotion": ("happy", "sad", "angry", "neutral", "fearful", "disgusted", "surprised"),
}
MISSING = {"", "unknown", "none", "nan", "n/a", "na", "null", "unk"}
LANGUAGES = ("en", "zh")


class CaptionError(FsclapError):
    """An attribute level outside the caption writer's vocabulary, or an unsupported language."""


def _article(phrase: str) -> str:
    """ "a" or "an" for the phrase's first word (enough for this vocabulary's words)."""
    first = phrase.split()[0].lower() if phrase.split() else ""
    return "an" if first[:1] in "aeio" or first.startswith("un") else "a"


# --- English vocabulary ---------------------------------------------------------------------------

# Wide word lists on purpose: people query with their own words, and the text encoder learns a level
# only from the words it was trained on (each training epoch re-draws the words).
_EN_EMOTION_ADJ = {
    "happy": ["happy", "cheerful", "joyful", "glad", "elated", "joyous", "jolly"],
    "sad": ["sad", "sorrowful", "melancholy", "unhappy", "mournful", "dejected", "tearful"],
    "angry": ["angry", "furious", "irritated", "annoyed", "livid", "fuming", "indignant"],
    "neutral": ["neutral", "calm", "composed", "unemotional", "impassive", "detached"],
    "fearful": ["fearful", "frightened", "scared", "afraid", "anxious", "nervous", "alarmed"],
    "disgusted": ["disgusted", "repulsed", "repelled", "nauseated", "grossed out"],
    "surprised": ["surprised", "astonished", "amazed", "shocked", "astounded", "taken aback"],
}
_EN_EMOTION_NOUN = {
    "happy": ["happiness", "joy", "delight", "cheer"],
    "sad": ["sadness", "sorrow", "grief", "melancholy"],
    "angry": ["anger", "rage", "fury", "irritation"],
    "neutral": ["calm", "no strong emotion", "composure", "no particular feeling"],
    "fearful": ["fear", "anxiety", "dread", "alarm"],
    "disgusted": ["disgust", "revulsion", "distaste"],
    "surprised": ["surprise", "astonishment", "amazement", "shock"],
}
_EN_EMOTION_ADV = {
    "happy": ["happily", "cheerfully", "joyfully", "gleefully"],
    "sad": ["sadly", "sorrowfully", "mournfully", "tearfully"],
    "angry": ["angrily", "furiously", "irritably", "heatedly"],
    "neutral": ["calmly", "neutrally", "impassively", "without emotion"],
    "fearful": ["fearfully", "nervously", "anxiously", "timidly"],
    "disgusted": ["with disgust", "in disgust", "with revulsion"],
    "surprised": ["in surprise", "with astonishment", "in shock", "in amazement"],
}

EN: dict[str, dict[str, dict[str, list[str]]]] = {
    "pitch": {
        "adv": {
            "low": [
                "in a low pitch",
                "with a deep voice",
                "in a deep tone",
                "in a low register",
                "with a bass voice",
                "in a lowered pitch",
            ],
            "normal": [
                "at a normal pitch",
                "at a moderate pitch",
                "in a medium pitch",
                "in a natural register",
                "at an ordinary pitch",
                "at a typical pitch",
            ],
            "high": [
                "in a high pitch",
                "with a high-pitched voice",
                "at a high pitch",
                "in a high register",
                "with a shrill voice",
                "in a raised pitch",
            ],
        },
        "np": {
            "low": [
                "a low pitch",
                "a deep tone",
                "a low-pitched voice",
                "a low register",
                "a bass register",
            ],
            "normal": [
                "a normal pitch",
                "a moderate pitch",
                "an average pitch",
                "a natural register",
                "an ordinary pitch",
            ],
            "high": [
                "a high pitch",
                "a high-pitched tone",
                "a raised pitch",
                "a high register",
                "a shrill tone",
            ],
        },
        "pred": {
            "low": ["low-pitched", "deep", "deep-voiced", "low in pitch"],
            "normal": [
                "moderately pitched",
                "of normal pitch",
                "of average pitch",
                "medium-pitched",
            ],
            "high": ["high-pitched", "high in pitch", "shrill", "high-voiced"],
        },
        "adj": {
            "low": ["deep", "low-pitched", "deep-voiced", "bass"],
            "normal": ["medium-pitched", "normal-pitched", "average-pitched"],
            "high": ["high-pitched", "shrill", "high-voiced"],
        },
    },
    "speed": {
        "adv": {
            "slow": [
                "slowly",
                "at a slow pace",
                "unhurriedly",
                "at a leisurely pace",
                "deliberately",
                "at a crawl",
                "languidly",
            ],
            "normal": [
                "at a normal pace",
                "at a moderate speed",
                "at an even pace",
                "at a natural pace",
                "at a conversational pace",
                "at a regular speed",
            ],
            "fast": [
                "quickly",
                "rapidly",
                "at a fast pace",
                "fast",
                "briskly",
                "swiftly",
                "at high speed",
            ],
        },
        "np": {
            "slow": [
                "a slow speaking rate",
                "a slow tempo",
                "a slow pace",
                "a leisurely delivery",
                "a slow rate of speech",
            ],
            "normal": [
                "a normal speaking rate",
                "a moderate pace",
                "an average tempo",
                "a natural pace",
                "a conversational tempo",
            ],
            "fast": [
                "a fast speaking rate",
                "a quick tempo",
                "a rapid pace",
                "a brisk pace",
                "a high speaking rate",
            ],
        },
        "pred": {
            "slow": ["slow", "unhurried", "leisurely", "slow-paced"],
            "normal": ["moderately paced", "of normal speed", "of average speed", "normally paced"],
            "fast": ["fast", "rapid", "quick", "brisk", "swift"],
        },
        "adj": {
            "slow": ["slow", "unhurried", "leisurely", "slow-paced"],
            "normal": ["moderately paced", "steady-paced", "normally paced"],
            "fast": ["fast-paced", "rapid", "brisk", "quick"],
        },
    },
    "energy": {
        "adv": {
            "low": [
                "softly",
                "quietly",
                "with low energy",
                "gently",
                "in a hushed voice",
                "weakly",
                "barely above a whisper",
            ],
            "normal": [
                "at a normal volume",
                "with moderate energy",
                "at a moderate volume",
                "at a comfortable volume",
                "at a regular loudness",
                "with ordinary energy",
            ],
            "high": [
                "loudly",
                "energetically",
                "with great energy",
                "forcefully",
                "powerfully",
                "vigorously",
                "at full volume",
            ],
        },
        "np": {
            "low": [
                "low energy",
                "a soft volume",
                "a quiet delivery",
                "a hushed delivery",
                "a gentle delivery",
            ],
            "normal": [
                "moderate energy",
                "a normal volume",
                "an average volume",
                "a comfortable loudness",
                "a regular volume",
            ],
            "high": [
                "high energy",
                "a loud volume",
                "a powerful delivery",
                "a forceful delivery",
                "great loudness",
            ],
        },
        "pred": {
            "low": ["quiet", "soft", "low in energy", "hushed", "gentle", "weak"],
            "normal": ["of moderate volume", "moderate in volume", "of normal loudness"],
            "high": ["loud", "energetic", "powerful", "forceful", "vigorous"],
        },
        "adj": {
            "low": ["quiet", "soft", "hushed", "gentle"],
            "normal": ["moderate-volume", "normal-volume", "medium-volume"],
            "high": ["loud", "energetic", "powerful", "forceful"],
        },
    },
    "emotion": {},  # built from the tables above, below
}

EN_SUBJECT_NOUNS = {
    "female": ["woman", "female speaker", "lady", "female voice actor"],
    "male": ["man", "male speaker", "gentleman", "male voice actor"],
    None: ["speaker", "person", "voice actor"],
}
EN_AGE_ADJ = {
    "child": ["young"],
    "young": ["young"],
    "middle-aged": ["middle-aged"],
    "elderly": ["elderly", "old"],
}
EN_CHILD_NOUNS = {"female": ["girl"], "male": ["boy"], None: ["child"]}
EN_PRONOUN = {"female": "she", "male": "he", None: "the speaker"}
EN_POSSESSIVE = {"female": "her", "male": "his", None: "the speaker's"}
EN_GENDER_VOICE = {
    "female": ["female voice", "woman's voice"],
    "male": ["male voice", "man's voice"],
    None: ["voice"],
}

EN_TEMPLATES: tuple[str, ...] = (
    "{subj} speaks {adv:*}.",
    "{subj} is speaking {adv:*}.",
    "{subj} talks {adv:*}.",
    "{subj} says something {adv:*}.",
    "{subj} delivers the line {adv:*}.",
    "{subj} speaks with {np:*}.",
    "{subj} talks with {np:*}.",
    "The voice of {subj} has {np:*}.",
    "{subj}'s voice is {pred:*}.",
    "This is {subj} speaking {adv:*}.",
    "Here, {subj} speaks {adv:*}.",
    "We hear {subj} speaking {adv:*}.",
    "In this clip, {subj} talks {adv:*}.",
    "{subj}[ with {np:pitch}] speaks {adv:*}.",
    "[Sounding {adj:emotion}, ]{subj} speaks {adv:*}.",
    "{subj} sounds {adj:emotion}[ and speaks {adv:*}].",
    "With {np:*}, {subj} reads the sentence.",
    "With {np:*}, {subj} speaks.",
    "{subj} uses {np:*}.",
    "{subj} has {a_adj:*} voice.",
    "{subj}[, whose voice is {pred:pitch,energy},] speaks {adv:*}.",
    "Speaking {adv:*}, {subj} conveys the message.",
    "{subj} expresses {noun:emotion}[ while speaking {adv:*}].",
    "The speech of {subj} is {pred:*}.",
    "Listen to {subj} speaking {adv:*}.",
    "{subj} is talking {adv:*}[, and sounds {adj:emotion}].",
    "{subj} says the words {adv:*}.",
    "{subj} utters the sentence {adv:*}.",
    "{subj} reads aloud {adv:*}.",
    "A recording of {subj} speaking {adv:*}.",
    "{subj} speaks, and {poss} delivery is {pred:*}.",
    "{subj} speaks in {a_adj:speed,energy,emotion} manner[, with {np:*}].",
    "Feeling {adj:emotion}, {subj} speaks[ {adv:*}].",
    "{subj} talks {adv:speed}[, {poss} voice {pred_voice:*}].",
    "In {a_adj:emotion} mood, {subj} talks[ {adv:*}].",
    "{subj} speaks {adv:*}; {pron} sounds {adj:emotion}.",
    "You can hear {subj} talking {adv:*}.",
    "The clip features {subj} speaking with {np:*}.",
    "{a_adj:*} {gvoice} speaks.",
    "{subj} is heard speaking {adv:*}.",
    "{subj} speaks[ {adv:speed}] with {np:*}.",
    "A clip of {subj} talking {adv:*}.",
    "{subj} answers {adv:*}.",
    "{subj} replies {adv:*}[; {pron} sounds {adj:emotion}].",
    "{subj} who speaks {adv:*}.",
    "Find {subj} speaking {adv:*}.",
    "Looking for {subj} with {np:*}.",
    "{subj}, {pred:*}.",
    "{a_adj:*} delivery from {subj}.",
    "Speech by {subj}: {pred:*}.",
    "{subj} narrates {adv:*}.",
    "{subj} pronounces each word {adv:*}.",
    "Audio of {subj} whose voice is {pred:*}.",
    "{subj} is speaking.",
    "We hear {subj}.",
)

# --- Chinese vocabulary ---------------------------------------------------------------------------

_ZH_EMOTION_ADJ = {
    "happy": ["开心", "愉快", "高兴"],
    "sad": ["悲伤", "难过", "伤心"],
    "angry": ["愤怒", "生气"],
    "neutral": ["平静", "平和"],
    "fearful": ["害怕", "恐惧", "紧张"],
    "disgusted": ["厌恶", "嫌弃"],
    "surprised": ["惊讶", "吃惊"],
}
ZH: dict[str, dict[str, dict[str, list[str]]]] = {
    "pitch": {
        "adv": {
            "low": ["用低沉的嗓音", "以较低的音调"],
            "normal": ["用正常的音调", "以适中的音调"],
            "high": ["用高亢的嗓音", "以较高的音调"],
        },
        "np": {
            "low": ["较低的音调", "低沉的音调"],
            "normal": ["正常的音调", "适中的音调"],
            "high": ["较高的音调", "高亢的音调"],
        },
        "pred": {
            "low": ["音调低沉", "音调较低"],
            "normal": ["音调适中", "音调正常"],
            "high": ["音调较高", "音调高亢"],
        },
    },
    "speed": {
        "adv": {
            "slow": ["慢慢地", "以缓慢的语速"],
            "normal": ["以正常的语速", "不紧不慢地"],
            "fast": ["快速地", "以很快的语速"],
        },
        "np": {
            "slow": ["缓慢的语速", "较慢的语速"],
            "normal": ["正常的语速", "适中的语速"],
            "fast": ["较快的语速", "飞快的语速"],
        },
        "pred": {
            "slow": ["语速缓慢", "语速较慢"],
            "normal": ["语速适中", "语速正常"],
            "fast": ["语速很快", "语速较快"],
        },
    },
    "energy": {
        "adv": {
            "low": ["轻声地", "以很小的音量"],
            "normal": ["以适中的音量", "以正常的音量"],
            "high": ["大声地", "以很大的音量"],
        },
        "np": {
            "low": ["较小的音量", "微弱的能量"],
            "normal": ["正常的音量", "适中的音量"],
            "high": ["很大的音量", "饱满的能量"],
        },
        "pred": {
            "low": ["音量很小", "音量较低"],
            "normal": ["音量适中", "音量正常"],
            "high": ["音量很大", "音量洪亮"],
        },
    },
    "emotion": {
        "adv": {k: [f"{a}地" for a in v] for k, v in _ZH_EMOTION_ADJ.items()},
        "np": {k: [f"{a}的语气" for a in v] for k, v in _ZH_EMOTION_ADJ.items()},
        "pred": {
            k: [f"语气{a}", f"听起来很{a}"] for k, v in _ZH_EMOTION_ADJ.items() for a in v[:1]
        },
        "adj": {k: list(v) for k, v in _ZH_EMOTION_ADJ.items()},
        "noun": {k: [f"{a}的情绪" for a in v] for k, v in _ZH_EMOTION_ADJ.items()},
    },
}
ZH_SUBJECT_NOUNS = {
    "female": ["女性", "女士", "女生"],
    "male": ["男性", "男士", "男生"],
    None: ["说话人", "说话者"],
}
ZH_CHILD_NOUNS = {
    "female": ["小女孩", "女孩"],
    "male": ["小男孩", "男孩"],
    None: ["孩子", "小朋友"],
}
ZH_AGE_ADJ = {"young": ["年轻"], "middle-aged": ["中年"], "elderly": ["年长的", "老年"]}
ZH_PRONOUN = {"female": "她", "male": "他", None: "说话人"}
ZH_GENDER_VOICE = {"female": ["女声"], "male": ["男声"], None: ["人声"]}

ZH_TEMPLATES: tuple[str, ...] = (
    "{subj}用{np:*}说话。",
    "{subj}以{np:*}讲话。",
    "{subj}{pred:*}。",
    "{subj}的声音{pred:*}。",
    "这是{subj}的声音，{pred:*}。",
    "{subj}正在说话，{pred:*}。",
    "我们听到{subj}在说话，{pred:*}。",
    "{subj}带着{noun:emotion}[，用{np:*}]说话。",
    "{subj}语气{adj:emotion}[，{pred:*}]。",
    "{subj}{adv:*}说着话。",
    "在这段录音中，{subj}{adv:*}讲话。",
    "{subj}说话时{pred:*}。",
    "{subj}用{np:*}朗读句子。",
    "{subj}用{np:*}念出这句话。",
    "{subj}开口说话，{pred:*}。",
    "{subj}在讲话，{pred:pitch,energy}[，{pred:*}]。",
    "{subj}以{np:speed}说话[，{pred:*}]。",
    "{subj}情绪{adj:emotion}[，用{np:*}说话]。",
    "{subj}正{adv:*}说话。",
    "录音里是{subj}，{pred:*}。",
    "{subj}{adv:*}说出这句话。",
    "这段{gvoice}{pred:*}。",
    "{subj}的讲话{pred:*}。",
    "听，{subj}正{adv:*}讲述着。",
    "{subj}在说话。",
    "这是{subj}的声音。",
)

# English emotion phrases, derived from the adjective/adverb/noun tables
EN["emotion"] = {
    "adv": {
        k: v
        + [f"with {_article(a)} {a} tone" for a in _EN_EMOTION_ADJ[k][:2]]
        + [f"in {_article(_EN_EMOTION_ADJ[k][0])} {_EN_EMOTION_ADJ[k][0]} mood"]
        for k, v in _EN_EMOTION_ADV.items()
    },
    "np": {
        k: [f"{_article(a)} {a} tone" for a in v] + [f"{_article(v[0])} {v[0]} mood"]
        for k, v in _EN_EMOTION_ADJ.items()
    },
    "pred": {k: list(v) for k, v in _EN_EMOTION_ADJ.items()},
    "adj": {k: list(v) for k, v in _EN_EMOTION_ADJ.items()},
    "noun": {k: list(v) for k, v in _EN_EMOTION_NOUN.items()},
}

VOCABULARY = {"en": EN, "zh": ZH}
TEMPLATES = {"en": EN_TEMPLATES, "zh": ZH_TEMPLATES}

_SLOT = re.compile(r"\{(\w+)(?::([\w,*\-]+))?\}")
_SEGMENT = re.compile(r"\[([^\]]*)\]")
SPEAKER_ROLES = {"subj", "pron", "poss", "gvoice"}


def known_attributes(attributes: Mapping[str, Any]) -> dict[str, str]:
    """The attributes worth describing, lower-cased; missing/None/NaN/"unknown" ones dropped.

    Raises :class:`CaptionError` for a level outside the vocabulary (a typo must not become a caption).
    """
    known: dict[str, str] = {}
    for name in (*SPEAKER_ATTRIBUTES, *STYLE_ATTRIBUTES):
        value = attributes.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        level = str(value).strip().lower()
        if level in MISSING:
            continue
        if level not in LEVELS[name]:
            raise CaptionError(
                f"caption writer: {name}={value!r} is not one of {list(LEVELS[name])} (or unknown)"
            )
        known[name] = level
    return known


@dataclass(frozen=True)
class _Slot:
    role: str
    attrs: tuple[str, ...] | None  # None: speaker slot; ("*",): the rest
    optional: bool


def _parse(template: str) -> list[_Slot]:
    slots = []
    optional_spans = [m.span() for m in _SEGMENT.finditer(template)]
    for m in _SLOT.finditer(template):
        role, attrs = m.group(1), m.group(2)
        optional = any(a <= m.start() < b for a, b in optional_spans)
        slots.append(
            _Slot(
                role, None if role in SPEAKER_ROLES else tuple((attrs or "*").split(",")), optional
            )
        )
    return slots


def _assign(template: str, known: dict[str, str]) -> dict[int, tuple[str, ...]] | None:
    """Which known attributes each slot describes; None when the template cannot describe ``known``
    exactly (a required slot would be empty, or an attribute would be left out)."""
    slots = _parse(template)
    style_known = [a for a in STYLE_ATTRIBUTES if a in known]
    explicit = {a for s in slots if s.attrs and s.attrs != ("*",) for a in s.attrs}
    rest = tuple(a for a in style_known if a not in explicit)
    assignment: dict[int, tuple[str, ...]] = {}
    described: set[str] = set()
    has_subject = any(s.role == "subj" for s in slots)
    for i, slot in enumerate(slots):
        if slot.attrs is None:
            continue
        attrs = rest if slot.attrs == ("*",) else tuple(a for a in slot.attrs if a in known)
        if not attrs and not slot.optional:
            return None
        assignment[i] = attrs
        described.update(attrs)
    if set(style_known) - described:
        return None
    if "age" in known and not has_subject:
        return None
    if "gender" in known and not any(s.role in SPEAKER_ROLES for s in slots):
        return None
    return assignment


class CaptionWriter:
    """Writes one caption per record; deterministic in ``(seed, key, language)``."""

    def __init__(self, language: str = "en", seed: int = 0):
        if language not in LANGUAGES:
            raise CaptionError(
                f"caption language {language!r} not supported (choose from {', '.join(LANGUAGES)})"
            )
        self.language = language
        self.seed = seed
        self.templates = TEMPLATES[language]
        self.vocabulary = VOCABULARY[language]

    def write(self, attributes: Mapping[str, Any], key: str = "") -> str:
        return self.write_with_template(attributes, key)[0]

    def write_with_template(self, attributes: Mapping[str, Any], key: str = "") -> tuple[str, int]:
        """The caption and the index of the template used (for coverage checks)."""
        known = known_attributes(attributes)
        rng = random.Random(f"{self.seed}|{key}|{self.language}")
        candidates = [
            (i, a) for i, t in enumerate(self.templates) if (a := _assign(t, known)) is not None
        ]
        index, assignment = rng.choice(candidates)
        return self._render(self.templates[index], assignment, known, rng), index

    # -- rendering ----------------------------------------------------------------------------

    def _render(
        self,
        template: str,
        assignment: dict[int, tuple[str, ...]],
        known: dict[str, str],
        rng: random.Random,
    ) -> str:
        rendered = [
            self._slot_text(slot, assignment.get(i, ()), known, rng)
            for i, slot in enumerate(_parse(template))
        ]
        texts = iter(rendered)  # slot texts in template order

        def substitute(fragment: str) -> str:
            return _SLOT.sub(lambda _m: next(texts), fragment)

        pieces, pos = [], 0
        for m in _SEGMENT.finditer(template):
            pieces.append(substitute(template[pos : m.start()]))
            inner_texts = [next(texts) for _ in _SLOT.findall(m.group(1))]
            if all(inner_texts):  # an optional segment appears only when all its slots have content
                inner = iter(inner_texts)
                pieces.append(_SLOT.sub(lambda _m, inner=inner: next(inner), m.group(1)))
            pos = m.end()
        pieces.append(substitute(template[pos:]))
        return self._tidy("".join(pieces))

    def _tidy(self, text: str) -> str:
        text = re.sub(r"\s+", " ", text).strip()
        text = re.sub(r"\s+([,.;])", r"\1", text)
        if self.language == "en":
            return text[:1].upper() + text[1:]
        return text

    def _slot_text(
        self, slot: _Slot, attrs: tuple[str, ...], known: dict[str, str], rng: random.Random
    ) -> str:
        if slot.attrs is None:
            return self._speaker(slot.role, known, rng)
        if not attrs:
            return ""
        order = list(attrs)
        if len(order) > 1:
            rng.shuffle(order)
        role = (
            "pred" if slot.role == "pred_voice" else ("adj" if slot.role == "a_adj" else slot.role)
        )
        phrases = []
        for attr in order:
            options = self.vocabulary[attr].get(role) or self.vocabulary[attr]["pred"]
            phrases.append(rng.choice(options[known[attr]]))
        if self.language == "zh":
            joined = (
                "，".join(phrases)
                if role in ("pred",)
                else (
                    "、".join(phrases[:-1]) + "和" + phrases[-1]
                    if len(phrases) > 1 and role == "np"
                    else "、".join(phrases)
                )
            )
            return joined
        if slot.role == "a_adj":
            joined = ", ".join(phrases)
            return f"{_article(joined)} {joined}"
        if slot.role == "pred_voice":
            return "sounding " + _join_en(phrases)
        return _join_en(phrases)

    def _speaker(self, role: str, known: dict[str, str], rng: random.Random) -> str:
        gender, age = known.get("gender"), known.get("age")
        if self.language == "zh":
            if role == "pron":
                return ZH_PRONOUN[gender]
            if role == "gvoice":
                return rng.choice(ZH_GENDER_VOICE[gender])
            if age == "child":
                return f"一个{rng.choice(ZH_CHILD_NOUNS[gender])}"
            nouns = [
                n
                for n in ZH_SUBJECT_NOUNS[gender]
                if not (n.endswith("生") and age in ("middle-aged", "elderly"))
            ]
            prefix = rng.choice(ZH_AGE_ADJ[age]) if age else ""
            return f"一位{prefix}{rng.choice(nouns)}"
        if role == "pron":
            return EN_PRONOUN[gender]
        if role == "poss":
            return EN_POSSESSIVE[gender]
        if role == "gvoice":
            return rng.choice(EN_GENDER_VOICE[gender])
        if age == "child":
            noun = rng.choice(EN_CHILD_NOUNS[gender])
            return f"a {noun}"
        if not age and not gender and rng.random() < 0.3:
            return "someone"
        noun = rng.choice(EN_SUBJECT_NOUNS[gender])
        phrase = f"{rng.choice(EN_AGE_ADJ[age])} {noun}" if age else noun
        return f"{_article(phrase)} {phrase}"


def _join_en(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def write_caption(
    attributes: Mapping[str, Any], key: str = "", seed: int = 0, language: str = "en"
) -> str:
    """One caption for one record (see :class:`CaptionWriter`)."""
    return CaptionWriter(language, seed).write(attributes, key)
