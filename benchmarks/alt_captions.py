"""A second, independent set of caption templates, used only by the generalisation benchmark.

The project's caption writer (``fsclap/caption_writer.py``) is what training captions come from;
a model can learn its phrasings rather than the attributes. These templates share none of its
sentence frames and avoid its level phrases where English allows, so a text query written here is
wording the model never saw. They describe the same attributes (gender, pitch, speed, energy,
emotion) and never describe an unknown level. Deterministic by ``(seed, key)``.

Kept in ``benchmarks/`` on purpose: nothing under ``pipeline/`` or ``model/`` may use it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

MISSING = {"", "unknown", "none", "nan"}

WHO = {
    "female": ["a female talker", "a girl's voice", "a gal", "a lady on the recording", "she"],
    "male": ["a male talker", "a guy", "a fellow", "a man on the recording", "he"],
    None: ["someone", "a talker", "the narrator"],
}
PITCH = {
    "low": [
        "a rumbling low register",
        "a bass-heavy tone",
        "a husky, low register",
        "a voice pitched down",
    ],
    "normal": ["an ordinary register", "a middle register", "an unremarkable pitch level"],
    "high": [
        "a shrill register",
        "a squeaky tone",
        "a piping, high register",
        "a voice pitched up",
    ],
}
SPEED = {
    "slow": [
        "drawls",
        "drags out every word",
        "takes their time over the words",
        "crawls through the line",
    ],
    "normal": [
        "keeps a conversational tempo",
        "talks at an everyday tempo",
        "neither rushes nor lingers",
    ],
    "fast": [
        "rattles off the line",
        "hurries through the words",
        "races through the sentence",
        "talks in a rush",
    ],
}
ENERGY = {
    "low": ["hushed", "barely above a murmur", "subdued and faint"],
    "normal": ["at an ordinary loudness", "at everyday volume", "with ordinary projection"],
    "high": ["booming", "with strong projection", "practically shouting"],
}
EMOTION = {
    "happy": ["gleeful", "delighted", "in high spirits"],
    "sad": ["gloomy", "downcast", "heartbroken"],
    "angry": ["livid", "enraged", "seething"],
    "neutral": ["matter-of-fact", "emotionless", "flat and businesslike"],
    "fearful": ["terrified", "panicky", "shaken"],
    "disgusted": ["revolted", "grossed out", "repelled"],
    "surprised": ["startled", "stunned", "taken aback"],
}


def _known(levels: Mapping[str, object], name: str) -> str | None:
    value = levels.get(name)
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip().lower()
    return None if text in MISSING else text


def alt_caption(levels: Mapping[str, object], seed: int, key: str) -> str:
    """One caption in the alternative wording for a row of attribute levels."""
    rng = random.Random(f"alt-caption|{seed}|{key}")
    gender = _known(levels, "gender")
    who = rng.choice(WHO.get(gender, WHO[None]))
    pitch, speed, energy, emotion = (
        _known(levels, a) for a in ("pitch", "speed", "energy", "emotion")
    )
    parts_with = [rng.choice(PITCH[pitch])] if pitch else []
    verb = rng.choice(SPEED[speed]) if speed else "says the line"
    manner = rng.choice(ENERGY[energy]) if energy else None
    mood = rng.choice(EMOTION[emotion]) if emotion else None
    frame = rng.randrange(3)
    if frame == 0:  # "<who>, <mood>, <verb> in <pitch>, <manner>."
        text = who[0].upper() + who[1:]
        if mood:
            text += f", {mood},"
        text += f" {verb}"
        if parts_with:
            text += f" in {parts_with[0]}"
        if manner:
            text += f", {manner}"
        return text + "."
    if frame == 1:  # "Listen: <who> <verb> ... Mood: <mood>."
        text = f"Listen: {who} {verb}"
        if manner:
            text += f", {manner}"
        if parts_with:
            text += f", using {parts_with[0]}"
        text += "."
        if mood:
            text += f" The mood is {mood}."
        return text
    # "Sounding <mood> and <manner>, <who> <verb> (<pitch>)."
    lead = [m for m in (mood, manner) if m]
    text = (
        f"Sounding {' and '.join(lead)}, {who} {verb}"
        if lead
        else f"{who[0].upper() + who[1:]} {verb}"
    )
    if parts_with:
        text += f" with {parts_with[0]}"
    return text + "."
