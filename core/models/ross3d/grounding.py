"""Ross3D's grounding head: the `<ground>` token's hidden state matched to object proposals (REFERENCE §5).

    visual tokens of the frames (projector output + 3D position embedding, what the LLM reads) [N,H]
        -> per proposal box: mean of the tokens whose patch lies in the box + sinusoidal 3D embedding of
           the box centre -> MLP -> object features [K,D]                   + learnable "no object" [D]
    hidden state at the `<ground>` token [H] -> MLP -> query [D]
    logits = cosine(query, [objects; no object]) / temperature  ->  probabilities over K + 1

Which patches belong to a box (`GroundingConfig.box_rule`):
- "fraction" (default, the paper's rule): a patch belongs when at least `min_fraction` (50%) of its
  measured depth pixels back-project inside the box (`pos3d.patch_box_fraction`, every `pixel_stride`-th
  pixel counted), on the same pooled token grid as the image branch;
- "centre": a patch belongs when its mean 3D position (the one the position embedding encodes) lies
  inside the box. A cheaper approximation of the 50% rule (it needs no depth at grounding time), exact for
  patches that see one surface.
A box no patch falls into gets the zero feature plus its centre's embedding (it is still a candidate).
With `GroundingConfig.size_feature` the head adds `size_proj(box_size_code(box))` to every object feature:
the box's extent, which the patch mean does not carry (a 112-pixel patch of wood looks the same on a
stool and on a table) and which a detector's proposal always has.

Loss: InfoNCE over the K + 1 candidates. No target (Multi3DRefer's zero-target queries): the no-object
class is the positive. Several targets (Multi3DRefer): every target is a positive and the loss is the mean
of -log p over the targets (the multi-positive InfoNCE), which spreads the probability over exactly the
targets - what `select_proposals`' cumulative rule reads back.

Class agreement (`GroundingConfig.class_match`; off in the paper's head): an object classifier
over each object feature and a query classifier over the prompt's text tokens (`SentencePool`: a learned
query attending over their final LLM states and word embeddings), both over the raw-label
vocabulary (`core.models.common.categories`), learn from the proposals' own labels and the target's label
(auxiliary cross-entropies, as ScanRefer's object and language classification losses). Their agreement
`class_weight * log sum_c p(c|object) p(c|query)`, computed from detached logits, is added to each
object's logit (not to "no object"): the sentence's class picks the candidates, the cosine the one among
them. A query with no target trains only the object classifier.

Colour agreement (`GroundingConfig.colour_weight` > 0, with class agreement): each box's colour is the
share of the image pixels of its patches whose colour reads as each colour word (`core.scene.colors`, the
rule the pipeline names objects' colours with; `box_colour_shares`); a second pooled sentence
(`colour_pool`) and classifier over the words plus "no colour" learn which colour the sentence asks for
(labels: `colour_match.asked_colours`, the sentence's colour word that the target box's pixels carry), and
`colour_weight * log(p(none) + sum_w p(w|sentence) share(w|box) + COLOUR_FLOOR)` is added beside the class
prior (detached, like it): Dense3D's colour matching, read from the frames instead of the point cloud.

Relation agreement (`GroundingConfig.relation_weight` > 0, with class agreement; at prediction only,
`Ross3DModel.ground`): Dense3D's relation matching (`core.models.common.relation_match`) over the boxes:
the anchor class the sentence names (read by `AnchorReader`, told the class the query classifier read) and
each box's gap to a box of that class, weighted by the object classifier's probability of it.

Selection (`select_proposals`): both tasks select nothing when the no-object class has the highest
probability, unless `GroundingConfig.single_no_object` is False: then ScanRefer, whose every description
has exactly one target, takes the most probable proposal whatever "no object" scores (the no-object class
is there for Multi3DRefer's zero-target queries). Otherwise ScanRefer takes the argmax, and Multi3DRefer
takes proposals by descending probability until their cumulative probability reaches `cumulative` (0.4);
the no-object entry is not part of that walk (its mass is not "covered" by any proposal, and stopping at
it would drop a query whose probability is spread over many true targets). The multi-positive loss above
is lowest with the probability spread evenly over the n targets, and then the cumulative walk keeps
ceil(0.4 n) of them: two of three chairs. With `GroundingConfig.relative` > 0 Multi3DRefer instead takes
every proposal whose probability is at least `relative` times the top one's, which keeps all n of an
even spread.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.models.common.categories import IGNORE, class_ids
from core.models.common.colour_match import (
    NO_COLOUR,
    asked_colours,
    colour_agreement,
    colour_loss,
    colour_word_shares,
)
from core.models.common.pos3d import DEFAULT_CLAMP, DEFAULT_STEP, sinusoidal_3d
from core.models.common.relation_match import AnchorReader, centre_size_gaps, relation_agreement
from core.models.common.vision_pretrain import token_cells
from core.models.errors import ModelError
from core.models.ross3d.configuration_ross3d import GroundingConfig
from core.scene.colors import COLOR_WORDS, sample_word_indices

SINGLE_TARGET_TASKS = ("scanrefer",)
MULTI_TARGET_TASKS = ("multi3drefer",)


def boxes_contain(xyz: Tensor, boxes: Tensor) -> Tensor:
    """bool [N,K]: point xyz [N,3] inside axis-aligned box [K,6] (cx,cy,cz,dx,dy,dz), faces inclusive."""
    if boxes.ndim != 2 or boxes.shape[1] != 6:
        raise ModelError(
            None, f"grounding: boxes must be [K,6] (cx,cy,cz,dx,dy,dz), got {tuple(boxes.shape)}"
        )
    b = boxes.to(device=xyz.device, dtype=torch.float32)
    lo, hi = b[:, :3] - b[:, 3:] / 2, b[:, :3] + b[:, 3:] / 2
    p = xyz.to(torch.float32)[:, None, :]
    return ((p >= lo[None]) & (p <= hi[None])).all(dim=-1)


def object_features(
    tokens: Tensor,
    boxes: Tensor,
    membership: Tensor,
    clamp: tuple[tuple[float, float], ...] = DEFAULT_CLAMP,
    step: float = DEFAULT_STEP,
) -> Tensor:
    """Object features [K,H]: the mean of the tokens [N,H] in each box (membership [N,K] bool) plus the
    sinusoidal 3D embedding of the box centre (zero feature where no token is in the box)."""
    if membership.shape != (tokens.shape[0], boxes.shape[0]):
        raise ModelError(
            None,
            f"grounding: membership {tuple(membership.shape)} for {tokens.shape[0]} tokens, "
            f"{len(boxes)} boxes",
        )
    weights = membership.to(tokens.dtype)
    counts = weights.sum(0).clamp(min=1.0)
    mean = (weights.T @ tokens) / counts[:, None]
    centre = sinusoidal_3d(boxes[:, :3].to(tokens.device, torch.float32), tokens.shape[1], clamp, step)
    return mean + centre.to(tokens.dtype)


def box_size_code(boxes: Tensor) -> Tensor:
    """[K,3] for boxes [K,6]: log of the longer and the shorter horizontal side and of the height (metres,
    floored at 1 cm), so the code does not change when an object turns by 90 degrees."""
    size = boxes[:, 3:].float().clamp(min=0.01)
    horizontal = size[:, :2].sort(dim=1, descending=True).values
    return torch.cat([horizontal, size[:, 2:]], dim=1).log()


def token_colour_shares(pixels: Tensor, encoder) -> Tensor:
    """[F*P, W]: per visual token (the encoder's pooled grid, frames in order), the share of its image
    pixels whose colour reads as each word of `COLOR_WORDS`. `pixels` [F,3,S,S] normalised by the encoder's
    image mean / std (`image_tokens.FrameInputs`); `encoder` a `VisionEncoder`."""
    frames, _, height, width = pixels.shape
    mean = torch.tensor(encoder.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(encoder.image_std, dtype=torch.float32).view(1, 3, 1, 1)
    rgb = (pixels.detach().float().cpu() * std + mean).clamp(0.0, 1.0).permute(0, 2, 3, 1).reshape(-1, 3)
    words = torch.from_numpy(sample_word_indices(rgb.numpy())).view(frames, -1)
    cells = token_cells(height, width, encoder)  # [S*S], P = off the grid
    tokens = encoder.grid[0] * encoder.grid[1]
    region = torch.arange(frames)[:, None] * (tokens + 1) + cells[None]  # (frame, cell), off-grid included
    shares = colour_word_shares(words.flatten(), region.flatten(), frames * (tokens + 1))
    return shares.view(frames, tokens + 1, -1)[:, :tokens].reshape(-1, len(COLOR_WORDS)).to(pixels.device)


def box_colour_shares(token_shares: Tensor, membership: Tensor) -> Tensor:
    """[K, W]: the colour shares of each box's member tokens (membership [N,K] bool), averaged; 0 rows for
    boxes no token falls into."""
    weights = membership.to(token_shares.dtype)
    return (weights.T @ token_shares) / weights.sum(0).clamp(min=1.0)[:, None]


class GroundingHead(nn.Module):
    """Query / object projections and the learnable no-object vector; see the module docstring."""

    def __init__(self, hidden: int, config: GroundingConfig):
        super().__init__()
        self.config = config
        d = config.dim
        self.query_proj = nn.Sequential(nn.Linear(hidden, d), nn.GELU(), nn.Linear(d, d))
        self.object_proj = nn.Sequential(nn.Linear(hidden, d), nn.GELU(), nn.Linear(d, d))
        self.no_object = nn.Parameter(torch.randn(d) * 0.02)
        self.size_proj = (
            nn.Sequential(nn.Linear(3, d), nn.GELU(), nn.Linear(d, hidden)) if config.size_feature else None
        )
        if config.class_match and not config.categories:
            raise ModelError(
                None, "grounding: class_match needs a category vocabulary (grounding.categories)"
            )
        classes = len(config.categories) + 1 if config.class_match else 0
        self.object_class = _classifier(hidden, d, classes) if classes else None
        self.query_class = _classifier(hidden, d, classes) if classes else None
        self.sentence_pool = SentencePool(hidden) if classes else None
        colour = bool(classes) and config.colour_weight > 0
        self.colour_pool = SentencePool(hidden) if colour else None
        self.query_colour = _classifier(hidden, d, NO_COLOUR + 1) if colour else None
        self.anchors = AnchorReader(config.categories) if classes and config.relation_weight > 0 else None

    def add_size(self, objects: Tensor, boxes: Tensor) -> Tensor:
        """objects [K,H] + the size code of boxes [K,6] through `size_proj` (unchanged without it)."""
        if self.size_proj is None:
            return objects
        code = box_size_code(boxes).to(device=objects.device, dtype=self.no_object.dtype)
        return objects + self.size_proj(code).to(objects.dtype)

    def sentence(self, states: Tensor, embeddings: Tensor) -> Tensor:
        """[H]: what the query classifier reads, pooled from the prompt's text tokens (`SentencePool`)."""
        return self.sentence_pool(states.to(self.no_object.dtype), embeddings.to(self.no_object.dtype))

    def class_prior(self, query: Tensor, objects: Tensor) -> Tensor:
        """[K]: class_weight * log sum_c p(c|object) p(c|query), from detached logits (`query`: the pooled
        sentence)."""
        with torch.no_grad():
            p_query = self.query_class(query.to(self.no_object.dtype)).float().softmax(-1)
            log_objects = self.object_class(objects.to(self.no_object.dtype)).float().log_softmax(-1)
            prior = torch.logsumexp(log_objects + p_query.clamp(min=1e-8).log()[None], dim=-1)
        return self.config.class_weight * prior

    def colour_sentence(self, states: Tensor, embeddings: Tensor) -> Tensor:
        """[H]: what the colour classifier reads (its own `SentencePool` over the prompt's text tokens)."""
        return self.colour_pool(states.to(self.no_object.dtype), embeddings.to(self.no_object.dtype))

    def colour_prior(self, colour_sentence: Tensor, shares: Tensor) -> Tensor:
        """[K]: colour_weight * log(p(none) + sum_w p(w|sentence) share(w|box) + COLOUR_FLOOR), detached."""
        with torch.no_grad():
            asked = self.query_colour(colour_sentence.to(self.no_object.dtype))
        return colour_agreement(shares, asked, self.config.colour_weight)

    def relation_prior(self, text: str, sentence: Tensor, objects: Tensor, boxes: Tensor) -> Tensor:
        """[K]: relation_weight * log nearness of each box (`boxes` [K,6] centre and size) to a box of the
        anchor class `text` names (other than the class the query classifier reads from `sentence` [H]), the
        boxes' classes from the object classifier over `objects` [K,H]; zeros when it names none. Detached."""
        with torch.no_grad():
            target_class = int(self.query_class(sentence.to(self.no_object.dtype)).argmax())
            object_logits = self.object_class(objects.to(self.no_object.dtype))
            gaps = centre_size_gaps(boxes)
        anchor = self.anchors(text, target_class)
        return relation_agreement(
            object_logits, gaps, anchor, self.config.relation_weight, self.config.relation_scale
        )

    def logits(
        self,
        query: Tensor,
        objects: Tensor,
        sentence: Tensor | None = None,
        colour_sentence: Tensor | None = None,
        shares: Tensor | None = None,
    ) -> Tensor:
        """query [H] (the `<ground>` state), objects [K,H] -> logits [K+1] (last: no object). With class
        agreement, `sentence` [H] (`self.sentence`) is what the query classifier reads (default: query);
        with colour agreement, `colour_sentence` [H] and the boxes' colour `shares` [K,W]."""
        q = F.normalize(self.query_proj(query.to(self.no_object.dtype)), dim=-1)
        o = self.object_proj(objects.to(self.no_object.dtype))
        candidates = F.normalize(torch.cat([o, self.no_object[None]], dim=0), dim=-1)
        out = candidates @ q / self.config.temperature
        if self.object_class is not None and objects.shape[0]:
            prior = self.class_prior(query if sentence is None else sentence, objects).to(out.dtype)
            if self.query_colour is not None and colour_sentence is not None and shares is not None:
                prior = prior + self.colour_prior(colour_sentence, shares).to(out.dtype)
            out = torch.cat([out[:-1] + prior, out[-1:]])
        return out

    def class_loss(
        self,
        queries: Tensor,
        objects: list[Tensor],
        labels: list[list[str]],
        targets: list[list[int]],
        colour_sentences: Tensor | None = None,
        shares: list[Tensor] | None = None,
        texts: list[str] | None = None,
    ) -> Tensor:
        """Cross-entropy of the object classifier (every labelled proposal) plus that of the query classifier
        over `queries` [B,H] (the pooled sentences; target: the first target's class; no target: none).
        `labels` per sample: each proposal's raw label, or [] for proposals without labels (a detector's).
        With colour agreement (`colour_sentences` [B,H], box `shares` per sample [K_b,W], the prompts'
        `texts`), plus the colour classifier's cross-entropy against `asked_colours` of the targets' boxes."""
        vocabulary = self.config.categories
        obj_logits, obj_classes, q_logits, q_classes = [], [], [], []
        for b, (feats, names) in enumerate(zip(objects, labels)):
            if not names:
                continue
            if len(names) != feats.shape[0]:
                raise ModelError(None, f"grounding: {len(names)} labels for {feats.shape[0]} proposals")
            classes = class_ids(names, vocabulary)
            obj_logits.append(self.object_class(feats.to(self.no_object.dtype)))
            obj_classes += classes
            if targets[b]:
                q_logits.append(self.query_class(queries[b].to(self.no_object.dtype)))
                q_classes.append(classes[targets[b][0]])
        device = queries.device
        loss = queries.new_zeros((), dtype=self.no_object.dtype)
        if obj_logits:
            loss = loss + F.cross_entropy(
                torch.cat(obj_logits).float(), torch.tensor(obj_classes, device=device), ignore_index=IGNORE
            )
        if q_logits:
            loss = loss + F.cross_entropy(
                torch.stack(q_logits).float(), torch.tensor(q_classes, device=device)
            )
        if self.query_colour is not None and colour_sentences is not None and shares is not None:
            if texts is None or len(texts) != len(objects):
                raise ModelError(None, "grounding: the colour classifier needs each sample's text")
            truth = torch.stack(
                [
                    shares[b][targets[b]].float().mean(0) if targets[b] else shares[b].new_zeros(NO_COLOUR)
                    for b in range(len(objects))
                ]
            )
            asked = self.query_colour(colour_sentences.to(self.no_object.dtype))
            loss = loss + colour_loss(asked, asked_colours(texts, truth))[0]
        return loss

    def forward(
        self,
        queries: Tensor,
        objects: list[Tensor],
        sentences: Tensor | None = None,
        colour_sentences: Tensor | None = None,
        shares: list[Tensor] | None = None,
    ) -> list[Tensor]:
        """queries [B,H], objects per sample [K_b,H] (sentences [B,H]; colour_sentences [B,H] and box colour
        shares per sample [K_b,W]) -> logits per sample [K_b+1]."""
        if queries.shape[0] != len(objects):
            raise ModelError(None, f"grounding: {queries.shape[0]} queries for {len(objects)} samples")
        return [
            self.logits(
                queries[b],
                objects[b],
                None if sentences is None else sentences[b],
                None if colour_sentences is None else colour_sentences[b],
                None if shares is None else shares[b],
            )
            for b in range(len(objects))
        ]


class SentencePool(nn.Module):
    """The class a sentence names, as one vector: a learned query attends over the prompt's text tokens,
    each the LayerNormed final LLM state plus the LayerNormed input embedding. A small LLM trained from
    scratch does not carry the noun to the `<ground>` state (its classifier read 14% of the classes on the
    default data), while the word embeddings name it directly."""

    def __init__(self, hidden: int, heads: int = 4):
        super().__init__()
        self.state_norm, self.word_norm = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.query = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
        self.attend = nn.MultiheadAttention(hidden, heads if hidden % heads == 0 else 1, batch_first=True)

    def forward(self, states: Tensor, embeddings: Tensor) -> Tensor:
        """states, embeddings [T,H] of one prompt's text tokens -> [H]."""
        keys = (self.state_norm(states) + self.word_norm(embeddings))[None]
        return self.attend(self.query, keys, keys, need_weights=False)[0][0, 0]


def _classifier(hidden: int, width: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, width), nn.GELU(), nn.Linear(width, classes))


def grounding_loss(logits: list[Tensor], targets: list[list[int]]) -> Tensor:
    """Mean over samples of the InfoNCE loss (module docstring); targets index the proposals, [] = none."""
    if len(logits) != len(targets):
        raise ModelError(None, f"grounding: {len(logits)} predictions for {len(targets)} target lists")
    losses = []
    for row, target in zip(logits, targets):
        k = row.shape[0] - 1
        bad = [t for t in target if not 0 <= t < k]
        if bad:
            raise ModelError(None, f"grounding: target indices {bad} out of range for {k} proposals")
        logp = torch.log_softmax(row.float(), dim=0)
        index = torch.tensor(sorted(set(target)) or [k], device=row.device)
        losses.append(-logp[index].mean())
    return torch.stack(losses).mean()


def select_proposals(
    probs: Tensor, task: str, cumulative: float = 0.4, relative: float = 0.0, single_no_object: bool = True
) -> list[int]:
    """Chosen proposal indices from probabilities [K+1] (last: no object); see the module docstring."""
    if probs.ndim != 1 or probs.shape[0] < 1:
        raise ModelError(None, f"select_proposals: expected probabilities [K+1], got {tuple(probs.shape)}")
    k = probs.shape[0] - 1
    if task in SINGLE_TARGET_TASKS:
        if not single_no_object:
            return [int(torch.argmax(probs[:k]))] if k else []
        best = int(torch.argmax(probs))
        return [] if best == k else [best]
    if task not in MULTI_TARGET_TASKS:
        raise ModelError(
            None,
            f"select_proposals: task must be one of {SINGLE_TARGET_TASKS + MULTI_TARGET_TASKS}, not {task!r}",
        )
    if int(torch.argmax(probs)) == k:
        return []
    order = torch.argsort(probs[:k].float(), descending=True, stable=True).tolist()
    if relative > 0:
        top = float(probs[order[0]])
        return [i for i in order if float(probs[i]) >= relative * top]
    chosen, total = [], 0.0
    for i in order:
        if total >= cumulative:
            break
        chosen.append(i)
        total += float(probs[i])
    return chosen
