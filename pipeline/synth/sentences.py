"""Varied English and Japanese sentences for generated speech, deterministic by a ``random.Random``.

Drama-flavoured lines (statements, questions, exclamations, replies) built from templates and word
lists: a few dozen templates times the word lists give tens of thousands of distinct sentences, so a
corpus of thousands of clips rarely repeats one. Sentences are short (roughly 6-18 words, 1.5-5 s
of speech), the length of a captioned clip in the paper's corpus.

The Japanese bank (for the Kokoro voices) is written in kana only: kanji have no fixed reading, and
the generator's rate measure counts morae from the text (``fsclap.acoustics.count_morae``).
Lines run roughly 12-32 morae (1.5-5 s at Japanese speaking rates).
"""

from __future__ import annotations

import random

from fsclap.errors import FsclapError

SENTENCE_LANGUAGES = ("en", "ja")

NAMES = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Emma",
    "Frank",
    "Grace",
    "Henry",
    "Iris",
    "Jack",
    "Kate",
    "Leo",
    "Maya",
    "Nick",
    "Olivia",
    "Peter",
    "Rose",
    "Sam",
    "Tina",
    "Victor",
    "Wendy",
    "Lucas",
    "Nora",
    "Oscar",
]
PLACES = [
    "the station",
    "the hospital",
    "the old house",
    "the office",
    "the river",
    "the market",
    "the airport",
    "the restaurant",
    "the school",
    "the harbour",
    "the hotel",
    "the garden",
    "the library",
    "the bridge",
    "the village",
    "the party",
    "the wedding",
    "the courthouse",
    "the bakery",
    "the museum",
]
OBJECTS = [
    "the letter",
    "the keys",
    "the ring",
    "the money",
    "the photograph",
    "the contract",
    "the phone",
    "the map",
    "the necklace",
    "the ticket",
    "the diary",
    "the painting",
    "the envelope",
    "the recipe",
    "the password",
    "the umbrella",
    "the watch",
    "the suitcase",
    "the medicine",
    "the invitation",
]
TIMES = [
    "tonight",
    "tomorrow morning",
    "last night",
    "yesterday",
    "next week",
    "this afternoon",
    "on Sunday",
    "before dawn",
    "after dinner",
    "in an hour",
    "at midnight",
    "three days ago",
    "last summer",
    "by Friday",
]
VERBS_PAST = [
    "found",
    "lost",
    "hid",
    "sold",
    "broke",
    "opened",
    "stole",
    "forgot",
    "returned",
    "burned",
    "signed",
    "painted",
    "borrowed",
    "dropped",
    "promised",
    "ruined",
    "kept",
    "moved",
]
VERBS_BASE = [
    "find",
    "call",
    "meet",
    "help",
    "trust",
    "forgive",
    "follow",
    "remember",
    "tell",
    "visit",
    "protect",
    "believe",
    "stop",
    "leave",
    "ask",
    "warn",
    "thank",
    "marry",
]
FEELINGS = [
    "happy",
    "worried",
    "tired",
    "afraid",
    "proud",
    "angry",
    "sorry",
    "nervous",
    "grateful",
    "lonely",
    "confused",
    "excited",
    "ashamed",
    "relieved",
    "jealous",
    "hopeful",
]
RELATIONS = [
    "your brother",
    "my sister",
    "our father",
    "her mother",
    "the doctor",
    "the manager",
    "his wife",
    "the neighbour",
    "the detective",
    "my best friend",
    "the teacher",
    "your cousin",
    "the lawyer",
    "the driver",
    "the young man",
    "the old woman",
]
ADJECTIVES = [
    "strange",
    "beautiful",
    "dangerous",
    "quiet",
    "cold",
    "expensive",
    "wonderful",
    "terrible",
    "empty",
    "crowded",
    "familiar",
    "broken",
    "perfect",
    "ordinary",
    "impossible",
    "lovely",
]
NOUNS = [
    "day",
    "idea",
    "story",
    "morning",
    "surprise",
    "mistake",
    "decision",
    "secret",
    "plan",
    "dream",
    "evening",
    "question",
    "answer",
    "journey",
    "promise",
    "lie",
]

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


EN_SLOTS = {
    "name": NAMES,
    "place": PLACES,
    "object": OBJECTS,
    "time": TIMES,
    "verb_past": VERBS_PAST,
    "verb_base": VERBS_BASE,
    "feeling": FEELINGS,
    "relation": RELATIONS,
    "adjective": ADJECTIVES,
    "noun": NOUNS,
}


def fill_template(
    rng: random.Random, templates: tuple[str, ...], slots: dict[str, list[str]]
) -> str:
    """A template and one word per slot (in the slots' order), all drawn from ``rng``."""
    template = rng.choice(templates)
    return template.format(**{name: rng.choice(words) for name, words in slots.items()})


def make_sentence(rng: random.Random) -> str:
    """One sentence, fully determined by the state of ``rng``."""
    text = fill_template(rng, TEMPLATES, EN_SLOTS)
    return text[0].upper() + text[1:]


JA_NAMES = [
    "ハルト",
    "ユイ",
    "ソウタ",
    "ミオ",
    "レン",
    "サクラ",
    "ケンジ",
    "アヤカ",
    "タクミ",
    "ナナミ",
    "リク",
    "ヒナ",
    "ダイキ",
    "マイ",
    "ショウ",
    "エミ",
]
JA_PLACES = [
    "えき",
    "びょういん",
    "がっこう",
    "かいしゃ",
    "こうえん",
    "みなと",
    "くうこう",
    "としょかん",
    "ホテル",
    "レストラン",
    "きっさてん",
    "おてら",
    "じんじゃ",
    "デパート",
    "ゆうえんち",
    "うみべ",
]
JA_OBJECTS = [
    "てがみ",
    "かぎ",
    "ゆびわ",
    "おかね",
    "しゃしん",
    "けいやくしょ",
    "スマホ",
    "ちず",
    "ネックレス",
    "きっぷ",
    "にっき",
    "かさ",
    "とけい",
    "スーツケース",
    "くすり",
    "しょうたいじょう",
]
JA_PAST_TIMES = [
    "ゆうべ",
    "きのう",
    "みっかまえ",
    "きょねんのなつ",
    "せんしゅう",
    "けさ",
    "さっき",
    "おととい",
]
JA_FUTURE_TIMES = [
    "こんや",
    "あしたのあさ",
    "らいしゅう",
    "きょうのごご",
    "にちようび",
    "よあけまえ",
    "ゆうしょくのあと",
    "いちじかんご",
    "まよなか",
    "あさって",
]
JA_VERBS_PAST = [
    "みつけた",
    "なくした",
    "かくした",
    "うった",
    "こわした",
    "あけた",
    "ぬすんだ",
    "わすれた",
    "かえした",
    "もやした",
    "すてた",
    "おとした",
]
JA_VERBS_PERSON_PAST = [
    "しんじた",
    "ゆるした",
    "うらぎった",
    "たすけた",
    "さがした",
    "まった",
    "おいかけた",
    "よんだ",
]
JA_VERBS_PERSON = ["しんじる", "ゆるす", "まもる", "たすける", "さがす", "まつ", "むかえにいく"]
JA_VERBS_MEET = [
    "あう",
    "でんわする",
    "あやまる",
    "れんらくする",
    "そうだんする",
    "ほんとうのことをいう",
]
JA_PEOPLE = [
    "おにいさん",
    "いもうと",
    "おとうさん",
    "おかあさん",
    "せんせい",
    "ぶちょう",
    "おくさん",
    "となりのひと",
    "けいじ",
    "しんゆう",
    "べんごし",
    "うんてんしゅ",
    "おばあちゃん",
    "あのおとこ",
]
JA_FEELINGS = [
    "うれしい",
    "かなしい",
    "さびしい",
    "くやしい",
    "こわい",
    "はずかしい",
    "つらい",
    "なつかしい",
]
JA_ADJECTIVES = [
    "ふしぎな",
    "きれいな",
    "きけんな",
    "しずかな",
    "さむい",
    "すてきな",
    "ひどい",
    "ながい",
    "さいこうの",
    "さいあくの",
]
JA_NOUNS = [
    "ひ",
    "はなし",
    "ゆめ",
    "やくそく",
    "ひみつ",
    "けいかく",
    "まちがい",
    "しつもん",
    "こたえ",
    "たび",
    "うそ",
    "けっしん",
]

JA_TEMPLATES: tuple[str, ...] = (
    "{past_time}、{place}で{object}を{verb_past}の。",
    "{name}、どうして{person}を{verb_person_past}の？",
    "{future_time}、もういちど{place}にもどらなきゃ。",
    "{name}が{object}を{verb_past}なんて、しんじられない！",
    "{name}に、{future_time}{place}でまってるってつたえて。",
    "だれが{object}を{verb_past}のか、だれもしらないの。",
    "こんなに{adjective}{noun}は、はじめてだよ。",
    "{person}を{verb_person}って、やくそくしたじゃない！",
    "{past_time}どこにいたの？ずっと{place}でまってたのに。",
    "{person}が{object}を{verb_past}って、{name}がいってた。",
    "また{object}を{verb_past}の？いいかげんにして。",
    "{future_time}、{place}であって、{noun}のことをはなそう。",
    "なんて{adjective}{noun}なの、{name}！",
    "{person}にあったら、わたしは{feeling}ってつたえて。",
    "ほんとうに{feeling}の、{name}？かおいろがわるいよ。",
    "{object}をわたせば、だれもけがをしないよ。",
    "{name}とわたしで、{future_time}{person}に{verb_meet}。",
    "{object}をみなかった？{place}においてきたの。",
    "{adjective}{noun}だったよね、ちがう？",
    "{past_time}、{place}のちかくで{object}をみつけたよ。",
    "{feeling}のはわかるけど、{person}にはいわないで。",
    "まって、{noun}のことをだれからきいたの？",
    "{place}まできてくれて、ありがとう、{name}。",
    "{object}を{verb_past}なんて、ほんとうにばかだった。",
    "{future_time}までにかえってきて。{noun}のことではなしがあるの。",
    "{person}が{place}で{name}をまってるよ。",
    "これが、まえにいってた{adjective}{noun}なの？",
    "もう{person}のことはしんじられないよ、{name}。",
    "{name}、{noun}のこと、ずっとかくしてたの？",
    "{name}！はやく{place}からにげて！",
    "{future_time}、{person}に{verb_meet}つもりなの？",
    "{person}のために、{object}をもってきたよ。",
)


JA_SLOTS = {
    "name": JA_NAMES,
    "place": JA_PLACES,
    "object": JA_OBJECTS,
    "past_time": JA_PAST_TIMES,
    "future_time": JA_FUTURE_TIMES,
    "verb_past": JA_VERBS_PAST,
    "verb_person_past": JA_VERBS_PERSON_PAST,
    "verb_person": JA_VERBS_PERSON,
    "verb_meet": JA_VERBS_MEET,
    "person": JA_PEOPLE,
    "feeling": JA_FEELINGS,
    "adjective": JA_ADJECTIVES,
    "noun": JA_NOUNS,
}


def make_japanese_sentence(rng: random.Random) -> str:
    """One kana-only Japanese line, fully determined by the state of ``rng``."""
    return fill_template(rng, JA_TEMPLATES, JA_SLOTS)


def distinct_sentences(
    rng: random.Random, n: int, language: str = "en", max_tries_factor: int = 20
) -> list[str]:
    """``n`` sentences in ``language`` (``en`` | ``ja``), distinct while the template space allows it
    (it holds tens of thousands)."""
    if language not in SENTENCE_LANGUAGES:
        raise FsclapError(
            f"sentence language must be one of {', '.join(SENTENCE_LANGUAGES)} (got {language!r})"
        )
    make = make_japanese_sentence if language == "ja" else make_sentence
    seen: set[str] = set()
    out: list[str] = []
    tries = 0
    while len(out) < n:
        sentence = make(rng)
        tries += 1
        if sentence in seen and tries < n * max_tries_factor:
            continue
        seen.add(sentence)
        out.append(sentence)
    return out
