"""ScanQA and SQA3D runners: exact match on short answers, plus caption metrics for ScanQA.

ScanQA: EM@1 is the top-1 answer found in the question's answer list. Reported twice, labelled: "raw"
compares the strings as given (ScanQA's and Video-3D-LLM's check) and "clean" compares after
`clean_answer` on both sides (LEO's); "refined (clean)" also accepts containment. BLEU / METEOR / ROUGE-L
/ CIDEr are reported in two conventions over the top-1 answer against all answers: under their plain
names "as given" (only a trailing period stripped, as Video-3D-LLM and Ross3D score: the headline, the
numbers to compare with theirs), and with the suffix " cleaned" after `clean_answer` on both sides (LEO's).

SQA3D: EM and refined EM after `clean_answer`, per question type (what / is / how / can / which / other,
from how the question starts) and overall.

A question without a prediction scores as wrong (an empty answer) and is listed as missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.data.errors import DataError
from core.data.jsonio import check_unique_keys
from core.data.predictions import read_answers
from core.data.scanqa import read_scanqa
from core.data.sqa3d import QUESTION_TYPES, read_sqa3d
from core.eval.answers import clean_answer, exact_match, refined_match
from core.eval.captions import SPICE_NOTE, CaptionScorer
from core.eval.keys import check_known, missing_keys
from core.eval.report import EvalReport

CLEAN_NOTE = "clean = LEO's clean_answer on prediction and answers; refined also accepts containment."
CLEANED = " cleaned"  # suffix of the caption metrics scored on clean_answer text
CAPTION_NOTES = [
    "caption metrics (BLEU, METEOR, ROUGE-L, CIDEr) as given, the headline: top-1 answer and answers as "
    "written, only a trailing period stripped (Video-3D-LLM / Ross3D convention); no PTB tokenizer.",
    f"'<metric>{CLEANED}': the same metrics after LEO's clean_answer on both sides (LEO convention).",
]


def as_given(text: str) -> str:
    """An answer as given, with only a trailing period stripped (Video-3D-LLM's and Ross3D's ScanQA form)."""
    text = text.strip()
    return text[:-1].rstrip() if text.endswith(".") else text


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def _top1(answers: dict[str, list[str]], qid: str) -> str:
    ranked = answers.get(qid)
    return ranked[0] if ranked else ""


def evaluate_scanqa(gt_path: str | Path, pred_path: str | Path, scorer: CaptionScorer) -> EvalReport:
    gt = read_scanqa(gt_path)
    check_unique_keys(gt_path, [r.question_id for r in gt])
    for i, r in enumerate(gt):
        if not r.answers:
            raise DataError(
                gt_path, "no answers: this split cannot be evaluated (ScanQA test files)", i, "answers"
            )
    preds = read_answers(pred_path)
    ids = [r.question_id for r in gt]
    check_known(pred_path, preds, ids, gt_path)

    samples, refs, hyps, clean_refs_all, clean_hyps = [], {}, {}, {}, {}
    for r in gt:
        top1 = _top1(preds, r.question_id)
        clean_pred, clean_refs = clean_answer(top1), [clean_answer(a) for a in r.answers]
        refs[r.question_id] = [as_given(a) for a in r.answers]
        hyps[r.question_id] = as_given(top1)
        clean_refs_all[r.question_id], clean_hyps[r.question_id] = clean_refs, clean_pred
        scores = {
            "EM@1 raw": float(exact_match(top1, r.answers)),
            "EM@1 clean": float(exact_match(clean_pred, clean_refs)),
            "EM@1 refined clean": float(refined_match(clean_pred, clean_refs)),
        }
        samples.append(
            {
                "key": r.question_id,
                "scene_id": r.scene_id,
                "question": r.question,
                "object_ids": r.object_ids,
                "object_names": r.object_names,
                "prediction": top1,
                "answers": r.answers,
                "missing": r.question_id not in preds,
                "scores": scores,
            }
        )
    captions = scorer.score(refs, hyps)
    cleaned = scorer.score(clean_refs_all, clean_hyps)
    for i, sample in enumerate(samples):
        sample["scores"].update(captions.sample(i))
        sample["scores"].update({name + CLEANED: v for name, v in cleaned.sample(i).items()})
    overall: dict[str, float | int] = {
        name: _mean([s["scores"][name] for s in samples])
        for name in ("EM@1 raw", "EM@1 clean", "EM@1 refined clean")
    }
    overall.update(captions.corpus)
    overall.update({name + CLEANED: v for name, v in cleaned.corpus.items()})
    overall["count"] = len(samples)
    return EvalReport(
        "scanqa",
        {"all": overall},
        samples,
        missing_keys(ids, preds),
        notes=[
            "raw = the top-1 string as given, in the answer list; " + CLEAN_NOTE,
            *CAPTION_NOTES,
            SPICE_NOTE,
        ],
    )


def _group_means(
    samples: list[dict], group: Callable[[dict], str], order: tuple[str, ...]
) -> dict[str, dict]:
    out: dict[str, dict[str, float | int]] = {}
    for name in [*order, "all"]:
        chosen = [s for s in samples if name == "all" or group(s) == name]
        if chosen:
            metrics = {m: _mean([s["scores"][m] for s in chosen]) for m in chosen[0]["scores"]}
            out[name] = {**metrics, "count": len(chosen)}
    return out


def evaluate_sqa3d(gt_path: str | Path, pred_path: str | Path) -> EvalReport:
    gt = read_sqa3d(gt_path)
    ids = [r.question_id for r in gt]
    check_unique_keys(gt_path, ids)
    for i, r in enumerate(gt):
        if not r.answers:
            raise DataError(gt_path, "no answers: this split cannot be evaluated", i, "answers")
    preds = read_answers(pred_path)
    check_known(pred_path, preds, ids, gt_path)

    samples = []
    for r in gt:
        top1 = _top1(preds, r.question_id)
        clean_pred, clean_refs = clean_answer(top1), [clean_answer(a) for a in r.answers]
        samples.append(
            {
                "key": r.question_id,
                "scene_id": r.scene_id,
                "question_type": r.question_type,
                "situation": r.situation,
                "question": r.question,
                "prediction": top1,
                "answers": r.answers,
                "missing": r.question_id not in preds,
                "scores": {
                    "EM": float(exact_match(clean_pred, clean_refs)),
                    "EM refined": float(refined_match(clean_pred, clean_refs)),
                },
            }
        )
    metrics = _group_means(samples, lambda s: s["question_type"], QUESTION_TYPES)
    notes = [
        "EM / EM refined compare after clean_answer (LEO); refined also accepts containment, never empty.",
        "question types come from how the question starts (what / is / how / can / which / other).",
    ]
    return EvalReport("sqa3d", metrics, samples, missing_keys(ids, preds), notes)
