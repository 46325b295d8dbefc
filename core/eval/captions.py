"""Caption metrics with pycocoevalcap's own scorers: BLEU-1..4, METEOR, ROUGE-L and CIDEr(-D).

What each is (REFERENCE §3), all computed by pycocoevalcap 1.2 so that numbers compare with the papers:
- BLEU: corpus level (clipped n-gram counts summed over the split, closest reference length with ties to
  the shorter, brevity penalty exp(1 - r/c)); per-sample values are pycocoevalcap's sentence BLEU.
- METEOR: the Java meteor-1.5 jar (`-l en -norm`); the corpus value is the jar's aggregate.
- ROUGE-L: per sample, LCS precision / recall maximised over references, F with beta 1.2; averaged.
- CIDEr: pycocoevalcap's `Cider`, which is CIDEr-D (clipped counts, Gaussian length penalty sigma 6, x10),
  with the idf taken over every sample given in one call: always score a whole split at once.
- SPICE is left out: it needs the Stanford CoreNLP models, a download that is not available offline.

Tokenization: pycocoevalcap's PTBTokenizer is not used. It shells out to Java and writes a temp file into
the installed package (site-packages must be writable), and most 3D captioning code skips it. Instead each
task normalises text in Python (`scan2cap_text`, or `clean_answer` for QA), and every text then has
newlines and `|||` (METEOR's field separator) removed and whitespace runs collapsed to one space
(pycocoevalcap's ROUGE splits on single spaces and would count empty tokens).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge

from core.eval.errors import EvalError

BLEU = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
METRICS = (*BLEU, "METEOR", "ROUGE-L", "CIDEr")
SPICE_NOTE = "SPICE left out: it needs the Stanford CoreNLP models, a download not available offline."
EMPTY_CAPTION = "sos eos"

_PUNCT = re.compile(r"([.,])")


def tidy(text: str) -> str:
    """Make a text safe for every scorer: no newlines, no '|||', single spaces, no outer spaces."""
    return " ".join(text.replace("|||", " ").split())


def scan2cap_text(text: str) -> str:
    """Scan2Cap's caption form: lower case, '.' and ',' split off as words, wrapped in `sos ... eos`."""
    body = tidy(_PUNCT.sub(r" \1 ", text.lower()))
    return f"sos {body} eos" if body else EMPTY_CAPTION


@dataclass
class CaptionScores:
    """Corpus scores and per-sample scores (aligned with `keys`) of one scored split."""

    keys: list[str]
    corpus: dict[str, float]
    per_sample: dict[str, list[float]] = field(default_factory=dict)

    def sample(self, i: int) -> dict[str, float]:
        return {name: values[i] for name, values in self.per_sample.items()}


class CaptionScorer:
    """Scores splits with pycocoevalcap, keeping one METEOR Java process for all of them.

    The jar takes several seconds to start, so one scorer should serve every split of a run; close it (or
    use it as a context manager) to stop the process. `meteor=False` skips METEOR (no Java needed).
    """

    def __init__(self, meteor: bool = True):
        self.use_meteor = meteor
        self._meteor: Meteor | None = None

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._meteor = None  # pycocoevalcap's Meteor stops its process when collected

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS if self.use_meteor else tuple(m for m in METRICS if m != "METEOR")

    def score(self, references: dict[str, list[str]], hypotheses: dict[str, str]) -> CaptionScores:
        """Score one whole split: every key needs one hypothesis and at least one reference."""
        if references.keys() != hypotheses.keys():
            raise ValueError("references and hypotheses must have the same keys")
        keys = list(references)
        if not keys:
            return CaptionScores([], {m: 0.0 for m in self.metrics}, {m: [] for m in self.metrics})
        for key in keys:
            if not references[key]:
                raise ValueError(f"sample {key!r} has no reference")
        gts = {k: [tidy(r) for r in references[k]] for k in keys}
        res = {k: [tidy(hypotheses[k])] for k in keys}
        corpus: dict[str, float] = {}
        per_sample: dict[str, list[float]] = {}

        bleu, bleu_samples = Bleu(4).compute_score(gts, res, verbose=0)
        for n, name in enumerate(BLEU):
            corpus[name] = float(bleu[n])
            per_sample[name] = [float(v) for v in bleu_samples[n]]
        if self.use_meteor:
            corpus["METEOR"], per_sample["METEOR"] = self._meteor_score(gts, res)
        rouge, rouge_samples = Rouge().compute_score(gts, res)
        corpus["ROUGE-L"], per_sample["ROUGE-L"] = float(rouge), [float(v) for v in rouge_samples]
        cider, cider_samples = Cider().compute_score(gts, res)
        corpus["CIDEr"], per_sample["CIDEr"] = float(cider), [float(v) for v in cider_samples]
        return CaptionScores(keys, corpus, per_sample)

    def _meteor_score(
        self, gts: dict[str, list[str]], res: dict[str, list[str]]
    ) -> tuple[float, list[float]]:
        if self._meteor is None:
            try:
                self._meteor = Meteor()
            except FileNotFoundError:
                raise EvalError(
                    None, "METEOR needs Java (no `java` on PATH): install a JRE or pass --no-meteor"
                ) from None
        meteor = self._meteor
        try:
            score, scores = meteor.compute_score(gts, res)
        except (ValueError, OSError) as exc:
            self._abandon(meteor)
            raise EvalError(None, f"the METEOR jar failed ({exc}); pass --no-meteor to skip it") from None
        return float(score), [float(v) for v in scores]

    def _abandon(self, meteor: Meteor) -> None:
        """Stop a failed jar and free its lock, so that collecting it later cannot block."""
        meteor.meteor_p.kill()
        meteor.meteor_p.wait()
        lock: threading.Lock = meteor.lock
        if lock.locked():
            lock.release()
        self._meteor = None
