import random

import pytest

from fsclap.acoustics import count_morae, count_syllables
from fsclap.errors import FsclapError
from pipeline.synth.sentences import distinct_sentences


@pytest.mark.parametrize(
    "text, morae",
    [
        ("きょうは", 3),  # kyo-o-wa: small yo joins ki
        ("がっこう", 4),  # ga-Q-ko-o: small tsu is a mora of its own
        ("コーヒー", 4),  # ko-o-hi-i: the long-vowel mark is a mora
        ("しゃしん", 3),  # sha-shi-N
        ("ちょっとまって！", 6),
        ("ファイル", 3),  # small vowel joins fu
        ("こんにちは。", 5),
        ("キャンディー", 4),
        ("ヴァイオリン", 5),
        ("ハルト、どうしてけいじをまったの？", 15),  # ha-ru-to do-o-shi-te ke-i-ji-o ma-Q-ta-no
    ],
)
def test_count_morae_on_hand_counted_kana(text, morae):
    assert count_morae(text) == morae
    assert count_syllables(text) == morae


def test_kanji_and_english_are_not_morae():
    assert count_morae("今日は雨") == 1  # only the kana は; kanji have no fixed reading
    assert count_morae("Where were you?") == 0
    assert count_syllables("Where were you?") == 3


def test_japanese_sentences_are_kana_only_distinct_and_deterministic():
    lines = distinct_sentences(random.Random(3), 300, language="ja")
    assert lines == distinct_sentences(random.Random(3), 300, language="ja")
    assert len(set(lines)) == 300
    kana_or_punctuation = (
        set("、。！？")
        | {chr(c) for c in range(0x3041, 0x3097)}
        | {chr(c) for c in range(0x30A1, 0x30FD)}
    )
    assert all(set(line) <= kana_or_punctuation for line in lines)
    morae = [count_morae(line) for line in lines]
    assert min(morae) >= 10 and max(morae) <= 35  # 1.5-5 s at Japanese speaking rates (6-8 morae/s)


def test_unknown_sentence_language_is_refused():
    with pytest.raises(FsclapError, match="sentence language must be one of en, ja"):
        distinct_sentences(random.Random(0), 2, language="fr")
