"""Metric definitions against hand-computed values: answers, captions, boxes, masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sacrebleu.metrics import BLEU

from core.data.sqa3d import question_type
from core.eval.answers import clean_answer, exact_match, refined_match
from core.eval.boxes import accuracy, grounding_iou, matched_ious, multi_f1
from core.eval.captions import CaptionScorer, scan2cap_text, tidy
from core.eval.masks import mask_accuracy, mean_iou, point_iou
from core.eval.qa import as_given

TINY, SMALL = 1e-15, 1e-9  # pycocoevalcap's BLEU guards against zero counts


def box(lo, hi) -> np.ndarray:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return np.concatenate([(lo + hi) / 2, hi - lo])


# ----------------------------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("The Chair.", "chair"),
        ("  2 ", "two"),
        ("none", "zero"),
        ("0", "zero"),
        ("23", "twenty-three"),
        ("21", "21"),
        ("10 oclock", "ten o'clock"),
        ("letf", "left"),
        ("tv", "TV"),
        ("mat2", "mat"),
        ("an apple", "apple"),
        ("walk backwards", "walk backward"),
        ("brown, wooden", "brown, wooden"),
        ("on top of the desk!", "on top of desk"),
    ],
)
def test_clean_answer(raw: str, clean: str) -> None:
    assert clean_answer(raw) == clean


def test_exact_and_refined_match() -> None:
    assert exact_match("chair", ["table", "chair"]) and refined_match("chair", ["table", "chair"])
    assert not exact_match("brown chair", ["chair"]) and refined_match("brown chair", ["chair"])
    assert refined_match("chair", ["office chair"])  # containment either way
    assert refined_match("o n desk", ["on desk"])  # whitespace is ignored for containment
    assert not refined_match("bed", ["chair"])
    # An empty prediction is contained in every string; it is still wrong.
    assert not exact_match("", [""]) and not refined_match("", ["chair"]) and not refined_match(" ", ["a b"])
    assert not refined_match("chair", [""])


def test_sqa3d_question_types() -> None:
    assert question_type("What is on my left?") == "what"
    assert question_type("  is the door open?") == "is"
    assert question_type("Isn't it dark?") == "is"  # a prefix test, as the reference evaluations do
    assert question_type("How many chairs?") == "how"
    assert question_type("Can I sit?") == "can"
    assert question_type("Which way?") == "which"
    assert question_type("Where is the lamp?") == "other"


# ---------------------------------------------------------------------------------------------- captions


def test_scan2cap_text_form() -> None:
    assert scan2cap_text("This is a Chair. It is brown,  by the desk.") == (
        "sos this is a chair . it is brown , by the desk . eos"
    )
    assert scan2cap_text("   ") == "sos eos"
    assert tidy("a ||| b\nc  d ") == "a b c d"


def test_bleu_corpus_level_by_hand() -> None:
    """Clipped counts summed over the corpus, closest reference length (ties to the shorter), BP."""
    refs = {"1": ["the cat sat", "a cat sat down"], "2": ["on the mat"]}
    hyps = {"1": "the the cat", "2": "on the mat"}
    scores = CaptionScorer(meteor=False).score(refs, hyps)
    # Sample 1: unigrams the x2 (clipped to 1 by "the cat sat"), cat -> 2 correct of 3; bigrams "the the"
    # (no), "the cat" (yes) -> 1 of 2; no trigram. Sample 2: all 3 / 2 / 1 correct.
    correct, guess = [2 + 3, 1 + 2, 0 + 1, 0], [3 + 3, 2 + 2, 1 + 1, 0]
    # Reference lengths 3 and 4 for a 3-word hypothesis: 3 is closest; 3 for sample 2; c = r = 6, and the
    # guards make the ratio (6 + TINY) / (6 + SMALL) a hair below 1: pycocoevalcap's BP is exp(-1.7e-10).
    bp = math.exp(1 - (6 + SMALL) / (6 + TINY))
    expected, product = [], 1.0
    for k in range(4):
        product *= (correct[k] + TINY) / (guess[k] + SMALL)
        expected.append(product ** (1 / (k + 1)) * bp)
    for k in range(4):
        assert scores.corpus[f"BLEU-{k + 1}"] == pytest.approx(expected[k], rel=1e-12)


def test_bleu_brevity_penalty_and_tie_to_shorter_reference() -> None:
    # A 2-word hypothesis with references of 1 and 3 words: both 1 away, the shorter (1) is used: no BP
    # (the longer would give exp(1 - 3/2)). Both words are in some reference: precision 1.
    tie = CaptionScorer(meteor=False).score({"a": ["x", "x y z"]}, {"a": "x y"})
    assert tie.corpus["BLEU-1"] == pytest.approx((2 + TINY) / (2 + SMALL), rel=1e-12)
    # A 2-word hypothesis against a 4-word reference: BP = exp(1 - 4/2).
    short = CaptionScorer(meteor=False).score({"a": ["x y z w"]}, {"a": "x y"})
    ratio = (2 + TINY) / (4 + SMALL)
    assert short.corpus["BLEU-1"] == pytest.approx(
        (2 + TINY) / (2 + SMALL) * math.exp(1 - 1 / ratio), rel=1e-12
    )


def test_bleu4_of_one_word_hypotheses() -> None:
    """Corpus-level counts: 1-word answers only hurt BLEU-4 when the whole corpus has no 4-grams."""
    scorer = CaptionScorer(meteor=False)
    only_short = scorer.score({"a": ["chair"], "b": ["table"]}, {"a": "chair", "b": "table"})
    p1 = (2 + TINY) / (2 + SMALL)
    p_none = TINY / SMALL  # no n-grams guessed at all for n >= 2
    assert only_short.corpus["BLEU-4"] == pytest.approx((p1 * p_none**3) ** 0.25, rel=1e-9)
    # In a corpus with longer answers the 1-word answer contributes its unigram and lowers nothing else.
    mixed = scorer.score(
        {"a": ["chair"], "b": ["next to the brown table"]}, {"a": "chair", "b": "next to the brown table"}
    )
    assert mixed.corpus["BLEU-4"] == pytest.approx(1.0, rel=1e-8)


def test_bleu_matches_sacrebleu_on_a_generated_corpus() -> None:
    """sacrebleu (tokenize=none, floor smoothing at pycocoevalcap's 1e-15, no effective order) agrees."""
    rng = np.random.default_rng(3)
    vocab = (
        "the",
        "a",
        "chair",
        "table",
        "is",
        "brown",
        "next",
        "to",
        "bed",
        "lamp",
        "on",
        "in",
        "wall",
        "white",
    )
    refs, hyps = {}, {}
    for i in range(400):
        references = [
            " ".join(rng.choice(vocab, int(rng.integers(1, 16)))) for _ in range(rng.integers(1, 5))
        ]
        words = [w if rng.random() < 0.7 else str(rng.choice(vocab)) for w in references[0].split()]
        if rng.random() < 0.3:
            words = words[: max(1, len(words) // 2)]
        refs[str(i)], hyps[str(i)] = references, " ".join(words)
    ours = CaptionScorer(meteor=False).score(refs, hyps)
    keys = list(refs)
    depth = max(len(r) for r in refs.values())
    streams = [[refs[k][j] if j < len(refs[k]) else None for k in keys] for j in range(depth)]
    for n in range(1, 5):
        bleu = BLEU(
            tokenize="none",
            smooth_method="floor",
            smooth_value=TINY,
            effective_order=False,
            max_ngram_order=n,
        )
        theirs = bleu.corpus_score([hyps[k] for k in keys], streams).score / 100
        assert abs(theirs - ours.corpus[f"BLEU-{n}"]) < 1e-9


def test_rouge_l_by_hand() -> None:
    # LCS("a b c d", "a c d e") = 3: P = 3/4, R = 3/4; against "a x" LCS 1: P = 1/4, R = 1/2.
    # Max P and max R over references: 3/4 and 3/4 -> F = (1 + b^2) P R / (R + b^2 P) = 3/4.
    scores = CaptionScorer(meteor=False).score({"s": ["a c d e", "a x"]}, {"s": "a b c d"})
    assert scores.corpus["ROUGE-L"] == pytest.approx(0.75)
    p, r, b2 = 1 / 2, 1 / 4, 1.2**2
    scores = CaptionScorer(meteor=False).score({"s": ["a q r s"]}, {"s": "a b"})
    assert scores.corpus["ROUGE-L"] == pytest.approx((1 + b2) * p * r / (r + b2 * p))


def test_cider_idf_is_taken_over_the_whole_split() -> None:
    """Two images with disjoint words: idf = log 2 for every n-gram, so 1- and 2-gram cosines are 1 and
    3-/4-grams (none) 0: CIDEr = 10 * (1 + 1 + 0 + 0) / 4 = 5. Scored alone, an image's idf is
    log 1 - log 1 = 0 and CIDEr collapses to 0: why a split is never scored in batches."""
    refs, hyps = {"A": ["a b"], "B": ["c d"]}, {"A": "a b", "B": "c d"}
    scorer = CaptionScorer(meteor=False)
    whole = scorer.score(refs, hyps)
    assert whole.corpus["CIDEr"] == pytest.approx(5.0)
    assert whole.per_sample["CIDEr"] == pytest.approx([5.0, 5.0])
    alone = scorer.score({"A": ["a b"]}, {"A": "a b"})
    assert alone.corpus["CIDEr"] == 0.0


def test_scorer_checks_its_input() -> None:
    scorer = CaptionScorer(meteor=False)
    with pytest.raises(ValueError):
        scorer.score({"a": ["x"]}, {"b": "x"})
    with pytest.raises(ValueError):
        scorer.score({"a": []}, {"a": "x"})
    empty = scorer.score({}, {})
    assert empty.keys == [] and empty.corpus["BLEU-4"] == 0.0


@pytest.mark.slow
def test_meteor_by_the_jar() -> None:
    with CaptionScorer(meteor=True) as scorer:
        scores = scorer.score(
            {"same": ["a brown wooden chair"], "none": ["a table"], "empty": ["a lamp"]},
            {"same": "a brown wooden chair", "none": "sofa", "empty": ""},
        )
        assert scores.per_sample["METEOR"][0] > 0.9
        assert scores.per_sample["METEOR"][1:] == [0.0, 0.0]
        again = scorer.score({"x": ["a chair"]}, {"x": "a chair"})  # the same Java process serves again
        assert again.per_sample["METEOR"][0] > 0.9


# ------------------------------------------------------------------------------------------------- boxes


def test_box_iou_and_accuracy_threshold_is_inclusive() -> None:
    unit = box([0, 0, 0], [1, 1, 1])
    assert grounding_iou(unit, unit) == 1.0
    assert grounding_iou(box([0.5, 0, 0], [1.5, 1, 1]), unit) == pytest.approx(1 / 3)
    half = grounding_iou(box([0, 0, 0], [1, 1, 1]), box([0, 0, 0], [2, 1, 1]))
    assert half == 0.5
    assert accuracy([half], 0.5) == 1.0  # IoU >= k counts
    assert accuracy([1.0, 1 / 3, 0.0, 0.5], 0.25) == 0.75
    assert accuracy([], 0.25) == 0.0


def test_multi3drefer_f1_by_hand() -> None:
    a, b = box([0, 0, 0], [1, 1, 1]), box([2, 0, 0], [3, 1, 1])
    shifted_a = box([0.5, 0, 0], [1.5, 1, 1])  # IoU 1/3 with a, 0 with b
    assert multi_f1(np.zeros((0, 6)), np.zeros((0, 6))) == {0.25: 1.0, 0.5: 1.0}  # zero target, nothing said
    assert multi_f1(a[None], np.zeros((0, 6))) == {0.25: 0.0, 0.5: 0.0}
    assert multi_f1(np.zeros((0, 6)), a[None]) == {0.25: 0.0, 0.5: 0.0}
    # Hungarian matching pairs b-b (1.0) and shifted_a-a (1/3): 2 TP at 0.25, 1 at 0.5.
    f1 = multi_f1(np.stack([b, shifted_a]), np.stack([a, b]))
    assert f1 == {0.25: pytest.approx(1.0), 0.5: pytest.approx(2 * 1 / 4)}
    # An extra wrong box costs precision: 2 TP / (3 + 2).
    f1 = multi_f1(np.stack([a, b, box([5, 5, 5], [6, 6, 6])]), np.stack([a, b]))
    assert f1[0.5] == pytest.approx(4 / 5)


def test_multi3drefer_ties_match_one_box_once() -> None:
    """A duplicated prediction ties for one target: only one of the pair is a true positive."""
    a = box([0, 0, 0], [1, 1, 1])
    assert multi_f1(np.stack([a, a]), a[None]) == {0.25: pytest.approx(2 / 3), 0.5: pytest.approx(2 / 3)}
    # Two targets, two predictions that each overlap both equally: every matching totals the same IoU
    # and gives one pair per target.
    left, right = box([0, 0, 0], [1, 1, 1]), box([1, 0, 0], [2, 1, 1])
    middle = box([0.5, 0, 0], [1.5, 1, 1])
    ious = matched_ious(np.stack([middle, middle]), np.stack([left, right]))
    assert np.allclose(ious, [1 / 3, 1 / 3])


# ------------------------------------------------------------------------------------------------- masks


def test_point_iou_and_strict_accuracy() -> None:
    target = np.zeros(10, dtype=bool)
    target[:4] = True
    assert point_iou(np.arange(4), target) == pytest.approx(4 / (4 + 1e-6))
    # 2 of the 4 target vertices plus 2 others: inter 2, union 6.
    assert point_iou(np.array([0, 1, 8, 9]), target) == pytest.approx(2 / (6 + 1e-6))
    assert point_iou(np.zeros(0, dtype=np.int64), target) == 0.0
    assert point_iou(np.arange(3), np.zeros(10, dtype=bool)) == 0.0
    assert mask_accuracy([0.5, 0.25, 0.6], 0.5) == pytest.approx(1 / 3)  # IoU > k, strictly
    assert mask_accuracy([0.5, 0.25, 0.6], 0.25) == pytest.approx(2 / 3)
    assert mean_iou([0.5, 0.25]) == 0.375 and mean_iou([]) == 0.0


@pytest.mark.parametrize(
    ("raw", "given"),
    [
        ("Brown chair.", "Brown chair"),
        (" two. ", "two"),
        ("2 chairs", "2 chairs"),
        ("a.b", "a.b"),
        ("..", "."),
    ],
)
def test_scanqa_as_given_strips_only_a_trailing_period(raw: str, given: str) -> None:
    """The Video-3D-LLM / Ross3D form: case, articles and digits stay as written."""
    assert as_given(raw) == given
