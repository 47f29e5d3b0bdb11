"""What the plan's and the writer's tests share: a small corpus's settings and sentences made up
from a closed list of words."""

from asr.synthesis.config import CorpusConfig
from asr.synthesis.sentences import Sentence, spoken_form
from asr.text import normalize

SMALL = CorpusConfig(
    train_utterances=4,
    dev_utterances=4,
    test_utterances=4,
    chapter_utterances=2,
    engines=("espeak",),
    texts=("wordnet",),
    rates=(1.0, 1.15),
    pitches=(0.0, 2.0),
    seed=3,
)


def fake_sentences(count: int) -> list[Sentence]:
    """`count` distinct sentences ("The alpha and the bravo met charlie today.") from 1,728."""
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
    ]
    raws = [f"The {words[i % 12]} and the {words[i // 12 % 12]} met {words[i // 144]} today." for i in range(count)]
    return [Sentence("test", s, normalize(s)) for s in map(spoken_form, raws) if s is not None]
