"""Matching prediction keys to ground-truth keys: unknown keys are an error, missing ones are counted."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from core.eval.errors import EvalError


def check_known(
    pred_path: str | Path, pred_keys: Iterable[str], gt_keys: Iterable[str], gt_path: str | Path
) -> None:
    """Refuse predictions for samples the ground truth does not have (a wrong split or key format)."""
    known = set(gt_keys)
    unknown = [k for k in pred_keys if k not in known]
    if unknown:
        example = ", ".join(repr(k) for k in unknown[:3])
        raise EvalError(
            pred_path,
            f"not in the ground truth {Path(gt_path).name} ({len(unknown)} unknown keys, e.g. {example})",
            index=unknown[0],
        )


def missing_keys(gt_keys: Iterable[str], pred_keys: Iterable[str]) -> list[str]:
    """Ground-truth keys without a prediction, in ground-truth order (they score as wrong)."""
    have = set(pred_keys)
    return [k for k in gt_keys if k not in have]
