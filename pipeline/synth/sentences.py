"""Varied English sentences for generated speech, deterministic by a ``random.Random``.

Drama-flavoured lines (statements, questions, exclamations, replies) built from templates and word
lists: a few dozen templates times the word lists give tens of thousands of distinct sentences, so a
corpus of thousands of clips rarely repeats one. Sentences are short (roughly 6-18 words, 1.5-5 s
of speech), the length of a captioned clip in the paper's corpus.
"""

from __future__ import annotations

import random

NAMES = ["Anna", "Ben", "Clara", "David", "Emma", "Frank", "Grace", "Henry", "Iris", "Jack", "Kate", "Leo",
         "Maya", "Nick", "Olivia", "Peter", "Rose", "Sam", "Tina", "Victor", "Wendy", "Lucas", "Nora", "Oscar"]
PLACES = ["the station", "the hospital", "the old house", "the office", "the river", "the market", "the airport",
          "the restaurant", "the school", "the harbour", "the hotel", "the garden", "the library", "the bridge",
          "the village", "the party", "the wedding", "the courthouse", "the bakery", "the museum"]
OBJECTS = ["the letter", "the keys", "the ring", "the money", "the photograph", "the contract", "the phone",
           "the map", "the necklace", "the ticket", "the diary", "the painting", "the envelope", "the recipe",
           "the password", "the umbrella", "the watch", "the suitcase", "the medicine", "the invitation"]
TIMES = ["tonight", "tomorrow morning", "last night", "yesterday", "next week", "this afternoon", "on Sunday",
         "before dawn", "after dinner", "in an hour", "at midnight", "three days ago", "last summer", "by Friday"]
VERBS_PAST = ["found", "lost", "hid", "sold", "broke", "opened", "stole", "forgot", "returned", "burned",
              "signed", "painted", "borrowed", "dropped", "promised", "ruined", "kept", "moved"]
VERBS_BASE = ["find", "call", "meet", "help", "trust", "forgive", "follow", "remember", "tell", "visit",
              "protect", "believe", "stop", "leave", "ask", "warn", "thank", "marry"]
FEELINGS = ["happy", "worried", "tired", "afraid", "proud", "angry", "sorry", "nervous", "grateful", "lonely",
            "confused", "excited", "ashamed", "relieved", "jealous", "hopeful"]
RELATIONS = ["your brother", "my sister", "our father", "her mother", "the doctor", "the manager", "his wife",
             "the neighbour", "the detective", "my best friend", "the teacher", "your cousin", "the lawyer",
             "the driver", "the young man", "the old woman"]
ADJECTIVES = ["strange", "beautiful", "dangerous", "quiet", "cold", "expensive", "wonderful", "terrible",
              "empty", "crowded", "familiar", "broken", "perfect", "ordinary", "impossible", "lovely"]
NOUNS = ["day", "idea", "story", "morning", "surprise", "mistake", "decision", "secret", "plan", "dream",
         "evening", "question", "answer", "journey", "promise", "lie"]

TEMPLATES: tuple[str, ...] = (
    "I {verb_past} {object} at {place} {time}.",
    "Did you really {verb_base} {relation} {time}?",
    "{name}, why did you {verb_base} {relation}?",
    "We have to go back to {place} {time}.",
    "I am so {feeling} that you {verb_past} {object}.",
    "Please tell {name} that I will be at {place} {time}.",
    "Nobody knows who {verb_past} {object}.",
    "This is the most {adjective} {noun} of my life.",
    "You promised me you would {verb_base} {relation}!",
    "Where were you {time}? I waited at {place} for hours.",
    "{name} said {relation} {verb_past} {object}.",
    "I can't believe you {verb_past} {object} again.",
    "Let's meet at {place} {time} and talk about the {noun}.",
    "What a {adjective} {noun}, {name}!",
    "Why would anyone {verb_base} {relation} after all this?",
    "I never wanted to {verb_base} you, {name}.",
    "If you see {relation}, tell them I am {feeling}.",
    "The {noun} was {adjective}, but we made it through.",
    "Honestly, I feel {feeling} about the whole {noun}.",
    "Give me {object} and nobody gets hurt.",
    "{name} and I will {verb_base} {relation} {time}.",
    "Have you seen {object}? I left it at {place}.",
    "Don't you dare {verb_base} {relation} without me!",
    "It was a {adjective} {noun}, wasn't it?",
    "We found {object} near {place} {time}.",
    "Are you {feeling}, {name}? You look pale.",
    "I only wanted to {verb_base} {relation}, nothing more.",
    "Something {adjective} happened at {place} {time}.",
    "Listen to me, {name}: {relation} {verb_past} {object}.",
    "Wait, who told you about the {noun}?",
    "Thank you for coming to {place}, {name}.",
    "I should never have {verb_past} {object}.",
    "Come home {time}, we need to talk about the {noun}.",
    "{relation} is waiting for you at {place}.",
    "Is this the {adjective} {noun} you told me about?",
    "Stop it, {name}! You know I can't {verb_base} {relation}.",
)


def make_sentence(rng: random.Random) -> str:
    """One sentence, fully determined by the state of ``rng``."""
    template = rng.choice(TEMPLATES)
    fills = {
        "name": rng.choice(NAMES), "place": rng.choice(PLACES), "object": rng.choice(OBJECTS),
        "time": rng.choice(TIMES), "verb_past": rng.choice(VERBS_PAST), "verb_base": rng.choice(VERBS_BASE),
        "feeling": rng.choice(FEELINGS), "relation": rng.choice(RELATIONS), "adjective": rng.choice(ADJECTIVES),
        "noun": rng.choice(NOUNS),
    }
    text = template.format(**fills)
    return text[0].upper() + text[1:]


def distinct_sentences(rng: random.Random, n: int, max_tries_factor: int = 20) -> list[str]:
    """``n`` sentences, distinct while the template space allows it (it holds tens of thousands)."""
    seen: set[str] = set()
    out: list[str] = []
    tries = 0
    while len(out) < n:
        sentence = make_sentence(rng)
        tries += 1
        if sentence in seen and tries < n * max_tries_factor:
            continue
        seen.add(sentence)
        out.append(sentence)
    return out
