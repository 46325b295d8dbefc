"""Class matching: which class does the sentence name, which class is each proposal, and do they agree.

Why: on the generated scenes the proposal the query chose was of the named class only about half the time
(bench/refseg_failure_modes.py), while the class-name baseline, handed the class, is right every time. A
referring model has to get the class right before relations and colours can pick among the copies. The
two-stage grounders (ScanRefer, InstanceRefer) learn this with two auxiliary classifiers: the object
class of every proposal, and the target class of the sentence. Here both are trained with cross-entropy
and their agreement enters the proposal choice as a prior:

    logit(proposal g) += weight * log sum_c p(class c | proposal g) * p(class c | sentence)

so a proposal of another class is pushed down by how sure both classifiers are, and the decoder's own
logits decide among proposals of the right class (colour, size, position, relations).

Colour matching (`colour_weight` > 0, `core.models.common.colour_match`): the same for the colour a
sentence asks for against each proposal's colour shares (the share of its points whose colour reads as
each colour word), with a third reader of the prompt as the colour classifier.

Relation matching (`relation_weight` > 0, `core.models.common.relation_match`, at prediction only): the
nearness of each proposal to a proposal of the anchor class the sentence names.

Classes: `core.models.common.categories` (0 = other, 1..K the raw-label vocabulary of the train scenes).
The sentence classifier reads the prompt's tokens (LLM states and word embeddings, see
`ClassMatch.__init__`); the proposal classifier reads the point-count-weighted mean of the proposal's
superpoint features (U-Net + descriptors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.models.common.colour_match import NO_COLOUR, colour_agreement
from core.models.common.relation_match import AnchorReader, relation_agreement
from core.models.errors import ModelError


@dataclass
class ClassMatchConfig:
    weight: float = 1.0  # of the log agreement in the proposal logits
    loss_weight: float = 0.5  # of each classifier's cross-entropy in the total loss
    min_count: int = 2  # a raw label needs this many train instances to be a class
    colour_weight: float = 0.0  # of the log colour agreement; 0 = no colour branch (checkpoints before it)
    # Relation matching (core.models.common.relation_match): weight of the log nearness of each proposal to
    # the anchor the sentence names, at prediction only (not trained with); 0 = off. It has no weights of
    # its own, so it can be switched on for a trained model. Scale: metres of box gap per e-fold.
    relation_weight: float = 0.0
    relation_scale: float = 0.5
    # the vocabulary (filled from the train scenes when training starts; saved with the checkpoint)
    categories: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        weights = (self.weight, self.loss_weight, self.colour_weight, self.relation_weight)
        if min(weights) < 0 or self.min_count < 1 or self.relation_scale <= 0:
            raise ModelError(
                None,
                "ClassMatchConfig: weight, colour_weight, relation_weight and loss_weight >= 0, "
                "relation_scale > 0, min_count >= 1",
            )


def _mlp(width_in: int, width: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width_in, width), nn.ReLU(inplace=True), nn.Linear(width, out))


class ClassMatch(nn.Module):
    """The two classifiers and the prior (module docstring)."""

    def __init__(
        self,
        config: ClassMatchConfig,
        feature_width: int,
        hidden: int,
        d_model: int,
        num_heads: int = 4,
        max_tokens: int = 256,
    ):
        super().__init__()
        if not config.categories:
            raise ModelError(None, "class_match needs its categories (built from the train scenes)")
        self.config = config
        classes = len(config.categories) + 1
        self.proposal_head = nn.Sequential(nn.LayerNorm(feature_width), _mlp(feature_width, d_model, classes))
        # The sentence branch reads the prompt's LLM states and word embeddings through its own projection,
        # one self-attention layer (position-aware: the named object is usually the first noun) and a
        # learned query; its loss trains the LLM too. Designs that read the decoder's text input, or the
        # prompt detached, stayed at chance inside the full model (README, "what made it learn").
        self.states_norm, self.embeds_norm = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.words_in = nn.Sequential(nn.Linear(2 * hidden, d_model), nn.LayerNorm(d_model))
        self.positions = nn.Embedding(max_tokens, d_model)
        self.context = nn.TransformerEncoderLayer(
            d_model, num_heads, 2 * d_model, dropout=0.0, batch_first=True, norm_first=True
        )
        self.sentence_query = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        self.words = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
        self.sentence_head = _mlp(d_model, d_model, classes)
        self.colour_query = self.colour_head = None
        if config.colour_weight > 0:  # its own query over the same words: a colour is not where a noun is
            self.colour_query = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
            self.colour_head = _mlp(d_model, d_model, NO_COLOUR + 1)
        self.anchors = AnchorReader(config.categories) if config.relation_weight > 0 else None

    def proposal_logits(self, feats: Tensor, counts: Tensor, groups: Tensor) -> Tensor:
        """[G, K + 1] from superpoint features [S, C], point counts [S] and proposal ids [S]."""
        num = int(groups.max()) + 1
        weight = counts.to(feats.dtype).clamp(min=1)[:, None]
        sums = feats.new_zeros(num, feats.shape[1]).index_add(0, groups, feats * weight)
        total = feats.new_zeros(num, 1).index_add(0, groups, weight)
        return self.proposal_head(sums / total)

    def sentence_logits(
        self, states: Tensor, embeds: Tensor, padding: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """(class logits [B, K + 1], colour logits [B, W] or None without the colour branch) from the
        prompt's packed LLM states and word embeddings [B, T, H] (True in `padding` [B, T] = padding;
        Dense3DModel._prompt)."""
        width = min(states.shape[1], self.positions.num_embeddings)
        states, embeds, padding = states[:, :width], embeds[:, :width], padding[:, :width]
        dtype = self.sentence_query.dtype
        x = torch.cat([self.states_norm(states.to(dtype)), self.embeds_norm(embeds.to(dtype))], dim=-1)
        x = self.words_in(x) + self.positions.weight[:width][None]
        x = self.context(x, src_key_padding_mask=padding)

        def read(query: Tensor, head: nn.Module) -> Tensor:
            found, _ = self.words(
                query.expand(x.shape[0], -1, -1), x, x, key_padding_mask=padding, need_weights=False
            )
            return head(found)[:, 0]

        colour = read(self.colour_query, self.colour_head) if self.colour_query is not None else None
        return read(self.sentence_query, self.sentence_head), colour

    def prior(self, proposal_logits: Tensor, sentence_logits: Tensor) -> Tensor:
        """[G]: weight * log of the probability that proposal and sentence name the same class.

        The classifiers learn from their own labels only (the prior is computed from detached logits):
        with the choice's loss flowing into them, the first run's sentence classifier stayed at chance
        (a flat class distribution costs the choice least while the classifiers are still wrong)."""
        agree = torch.logsumexp(
            proposal_logits.detach().float().log_softmax(-1)
            + sentence_logits.detach().float().log_softmax(-1)[None],
            dim=-1,
        )
        return self.config.weight * agree

    def colour_prior(self, shares: Tensor, colour_logits: Tensor) -> Tensor:
        """[G]: colour_weight * log(p(none) + sum_w p(w) share(w | proposal) + COLOUR_FLOOR) from the
        proposals' colour shares [G, W] (`proposal_colours`) and the sentence's colour logits [W + 1];
        detached, like `prior`."""
        return colour_agreement(shares, colour_logits, self.config.colour_weight)

    def relation_prior(
        self, question: str, proposal_logits: Tensor, gaps: Tensor, target_class: int
    ) -> tuple[Tensor, str | None]:
        """([G] relation_weight * log nearness of each proposal to the anchor the sentence names, the
        anchor's class name): the anchor is the first other class it mentions than `target_class`, the class
        the model read; zeros and None without an anchor."""
        anchor = self.anchors(question, target_class)
        prior = relation_agreement(
            proposal_logits, gaps, anchor, self.config.relation_weight, self.config.relation_scale
        )
        return prior, self.anchors.name(anchor)

    def loss(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(cross-entropy, accuracy) of logits [M, K + 1] against class ids [M]."""
        if logits.shape[0] == 0:
            return logits.sum() * 0.0, logits.new_zeros(())
        ce = F.cross_entropy(logits.float(), labels)
        return ce, (logits.argmax(-1) == labels).float().mean().detach()
