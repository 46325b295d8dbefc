"""Dense3D query decoder, [SEG] head and segmentation loss: shapes, padding, attention masks, the
cross-attention residual fix, hand-computed loss values, and overfitting one query (CPU, seconds)."""

from __future__ import annotations

import math

import pytest
import torch

from core.models.common.llm import seg_positions
from core.models.dense3d.loss import SegLoss, SegLossConfig, gt_superpoint_mask
from core.models.dense3d.query_decoder import (
    CrossAttentionLayer,
    QueryDecoder,
    QueryDecoderConfig,
    QueryDecoderOutput,
    attention_block_mask,
)
from core.models.dense3d.seg_head import (
    EMPTY_LOGIT,
    SegHead,
    empty_mask_where_missing,
)
from core.models.errors import ModelError

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(d_model=32, num_heads=4, num_layers=2, ffn_dim=64, in_channels=8)


def _decoder(seed: int = 0, **kw) -> QueryDecoder:
    torch.manual_seed(seed)
    return QueryDecoder(QueryDecoderConfig(**{**TINY, **kw})).eval()


# ---------------------------------------------------------------- decoder


def test_default_config_shapes_and_dtypes():
    torch.manual_seed(0)
    dec = QueryDecoder().eval()
    assert dec.config.d_model == 256 and dec.config.num_layers == 6 and dec.config.in_channels == 32
    feats = [torch.randn(40, 32), torch.randn(25, 32)]
    out = dec(torch.randn(2, 1, 256), feats)
    assert len(out.mask_logits) == 7 and len(out.score_logits) == 7
    for logits, score in zip(out.mask_logits, out.score_logits):
        assert logits.shape == (2, 1, 40) and logits.dtype == torch.float32
        assert score.shape == (2, 1) and score.dtype == torch.float32
    assert out.padding_mask.tolist() == [[False] * 40, [False] * 25 + [True] * 15]
    assert (out.pred_masks[1, 0, 25:] == EMPTY_LOGIT).all()
    assert [t.shape for t in out.per_sample()] == [(1, 40), (1, 25)]
    assert ((out.pred_scores >= 0) & (out.pred_scores <= 1)).all()
    # a [B, d] query is one query per sample
    assert dec(torch.randn(2, 256), feats).pred_masks.shape == (2, 1, 40)


def test_several_queries_per_sample():
    dec = _decoder()
    out = dec(torch.randn(3, 5, 32), [torch.randn(7, 8), torch.randn(3, 8), torch.randn(11, 8)])
    assert out.pred_masks.shape == (3, 5, 11) and out.score_logits[0].shape == (3, 5)


def test_padding_never_affects_results():
    dec = _decoder()
    torch.manual_seed(1)
    feats = [torch.randn(9, 8), torch.randn(4, 8)]
    query = torch.randn(2, 2, 32)
    listed = dec(query, feats)
    # the same batch padded by hand, with garbage (even NaN) in the padding and extra padding columns
    padded = torch.full((2, 15, 8), 123.0)
    padded[1, 10, 0] = float("nan")
    mask = torch.ones(2, 15, dtype=torch.bool)
    for b, f in enumerate(feats):
        padded[b, : len(f)] = f
        mask[b, : len(f)] = False
    by_hand = dec(query, padded, padding_mask=mask)
    for layer in range(3):
        for b, f in enumerate(feats):
            a = listed.mask_logits[layer][b, :, : len(f)]
            c = by_hand.mask_logits[layer][b, :, : len(f)]
            assert torch.allclose(a, c, atol=1e-5), layer
        assert torch.allclose(listed.score_logits[layer], by_hand.score_logits[layer], atol=1e-5)
    # inference mode (which may take PyTorch's fused attention path) agrees too
    with torch.no_grad():
        fast = dec(query, padded, padding_mask=mask)
    for b, f in enumerate(feats):
        assert torch.allclose(fast.pred_masks[b, :, : len(f)], listed.pred_masks[b, :, : len(f)], atol=1e-5)
    # each sample alone (no padding at all) gives the same as inside the batch
    for b, f in enumerate(feats):
        alone = dec(query[b : b + 1], [f])
        for layer in range(3):
            assert torch.allclose(alone.mask_logits[layer][0], listed.per_sample(layer)[b], atol=1e-5)
            assert torch.allclose(alone.score_logits[layer][0], listed.score_logits[layer][b], atol=1e-5)
    # and the loss ignores padding values of both logits and targets
    targets = [torch.tensor([1.0, 0, 1, 0, 0, 1, 1, 0, 0]), torch.tensor([0.0, 1, 1, 0])]
    loss = SegLoss()
    ref = loss(listed, targets)
    t_pad = torch.ones(2, 15)
    t_pad[0, :9], t_pad[1, :4] = targets[0], targets[1]
    other = loss(by_hand, t_pad)
    for key in ref:
        assert torch.allclose(ref[key], other[key], atol=1e-5), key


def test_training_mode_padding_and_gradients():
    dec = _decoder().train()
    feats = [torch.randn(6, 8, requires_grad=True), torch.randn(3, 8, requires_grad=True)]
    text = torch.randn(2, 5, 32, requires_grad=True)
    text_padding = torch.tensor([[False] * 5, [False, False, True, True, True]])
    out = dec(torch.randn(2, 1, 32), feats, text=text, text_padding=text_padding)
    terms = SegLoss()(out, [torch.tensor([1.0, 1, 0, 0, 0, 0]), torch.tensor([0.0, 0, 1])])
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"])
    assert all(torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0 for f in feats)
    assert all(p.grad is not None for p in dec.parameters() if p.requires_grad)
    # padded text tokens get no gradient: they are never attended
    assert text.grad[1, 2:].abs().sum() == 0 and text.grad[1, :2].abs().sum() > 0


def test_text_attention_reads_the_words_and_ignores_text_padding():
    torch.manual_seed(0)
    dec = _decoder().eval()
    feats, query = [torch.randn(7, 8)], torch.randn(1, 1, 32)
    words_a, words_b = torch.randn(1, 4, 32), torch.randn(1, 4, 32)
    a = dec(query, feats, text=words_a).pred_masks
    b = dec(query, feats, text=words_b).pred_masks
    assert not torch.allclose(a, b, atol=1e-4)  # same [SEG] query, other words: another mask
    padded = torch.cat([words_a, torch.randn(1, 3, 32) * 50], dim=1)
    pad = torch.tensor([[False] * 4 + [True] * 3])
    assert torch.allclose(a, dec(query, feats, text=padded, text_padding=pad).pred_masks, atol=1e-5)
    off = QueryDecoder(QueryDecoderConfig(**{**TINY, "text_attention": False})).eval()
    assert not any(name.startswith("layers.0.text_attn") for name, _ in off.named_parameters())
    with pytest.raises(ModelError, match="text states"):
        dec(query, feats, text=torch.randn(1, 4, 16))


def test_attention_block_mask_fallback_unit():
    logits = torch.tensor([[[-5.0, -5.0, -5.0, 9.0], [3.0, -5.0, -5.0, 9.0]]])  # [1, 2, 4]
    pad = torch.tensor([[False, False, False, True]])
    block = attention_block_mask(logits, pad, 0.5)
    # row 0: every real superpoint below 0.5 (padding's 9.0 must not count) -> attend all real ones
    assert block[0, 0].tolist() == [False, False, False, True]
    # row 1: superpoint 0 predicted -> only it is attended; padding stays blocked
    assert block[0, 1].tolist() == [False, True, True, True]


def _layer_outputs(dec: QueryDecoder, query: torch.Tensor, feats: list[torch.Tensor]) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda m, i, o: seen.append(o)) for layer in dec.layers]
    out = dec(query, feats)
    for h in hooks:
        h.remove()
    assert all(torch.isfinite(t).all() for t in seen + out.mask_logits + out.score_logits)
    return seen


def test_attention_mask_fallback_end_to_end():
    """Force every prediction below 0.5: no NaN, and each layer then attends every superpoint, i.e. it
    computes exactly what the decoder with attention masks turned off computes."""
    masked, unmasked = _decoder(seed=3), _decoder(seed=3, attention_masks=False)
    unmasked.load_state_dict(masked.state_dict())
    feats = [torch.randn(10, 8), torch.randn(6, 8)]
    query = torch.randn(2, 3, 32)
    # control: with ordinary weights some superpoints are masked, so the layers' outputs differ
    control = [
        torch.allclose(a, b, atol=1e-5)
        for a, b in zip(_layer_outputs(masked, query, feats), _layer_outputs(unmasked, query, feats))
    ]
    assert not all(control)
    for dec in (masked, unmasked):
        with torch.no_grad():
            dec.mask_mlp[2].weight.zero_()
            dec.mask_mlp[2].bias.fill_(1.0)  # mask features = all-ones
            dec.out_norm.weight.zero_()
            dec.out_norm.bias.fill_(-1.0)  # LN(query) = all minus-ones -> logit -32 everywhere
    out = masked(query, feats)
    assert all((m[0] == -32.0).all() and (m[1, :, :6] == -32.0).all() for m in out.mask_logits)
    for a, b in zip(_layer_outputs(masked, query, feats), _layer_outputs(unmasked, query, feats)):
        assert torch.allclose(a, b, atol=1e-6)


def test_cross_attention_residual_applies_dropout_and_norm():
    """Fails on the SPFormer-family bug (`dropout(output)` / `norm(output)` computed and discarded)."""
    torch.manual_seed(0)
    layer = CrossAttentionLayer(16, 4, dropout=0.0).eval()
    query, keys = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    block = torch.zeros(2, 3, 5, dtype=torch.bool)
    before = layer(query, keys, block)
    attn, _ = layer.attn(query, keys, keys, need_weights=False)
    expected = torch.nn.functional.layer_norm(query + attn, (16,), layer.norm.weight, layer.norm.bias)
    assert torch.allclose(before, expected, atol=1e-6)
    with torch.no_grad():
        layer.norm.weight.mul_(3.0)
        layer.norm.bias.add_(0.5)
    assert torch.allclose(layer(query, keys, block), 3.0 * before + 0.5, atol=1e-5)
    # dropout on the attention output is applied in training (p = 1 drops it: output = norm(query))
    drop = CrossAttentionLayer(16, 4, dropout=0.0)
    drop.load_state_dict(layer.state_dict())
    drop.dropout.p = 1.0
    drop.train()
    assert torch.allclose(drop(query, keys, block), layer.norm(query), atol=1e-6)


def test_bad_inputs_give_clear_errors():
    dec = _decoder()
    with pytest.raises(ModelError, match="sample 1 has no superpoints"):
        dec(torch.randn(2, 1, 32), [torch.randn(3, 8), torch.randn(0, 8)])
    with pytest.raises(ModelError, match=r"must be \[S, 8\]"):
        dec(torch.randn(1, 1, 32), [torch.randn(3, 7)])
    with pytest.raises(ModelError, match="query must be"):
        dec(torch.randn(1, 1, 31), [torch.randn(3, 8)])
    with pytest.raises(ModelError, match="divisible"):
        QueryDecoderConfig(d_model=30, num_heads=4)
    with pytest.raises(ModelError, match="padding_mask"):
        dec(torch.randn(1, 1, 32), torch.randn(1, 4, 8), padding_mask=torch.zeros(1, 5, dtype=torch.bool))


# ---------------------------------------------------------------- [SEG] head


def test_seg_head_queries_and_empty_convention():
    ids = torch.tensor([[5, 9, 7, 9], [5, 6, 7, 8], [9, 1, 2, 3]])
    hidden = torch.arange(3 * 4 * 2, dtype=torch.float32).reshape(3, 4, 2)
    torch.manual_seed(0)
    head = SegHead(hidden_size=2, d_model=16, proj_dim=8)
    assert [type(m).__name__ for m in head.text_hidden_fcs] == ["Linear", "ReLU", "Linear"]
    assert head.text_hidden_fcs[2].out_features == 8 and head.to_query.in_features == 8
    query, has3 = head.queries_from_hidden(hidden, seg_positions(ids, 9))
    assert query.shape == (3, 1, 16) and has3.tolist() == [True, False, True]
    assert torch.allclose(query[1, 0], head(torch.zeros(2)))
    logits = torch.randn(3, 1, 5)
    emptied = empty_mask_where_missing(logits, has3)
    assert torch.equal(emptied[0], logits[0]) and torch.equal(emptied[2], logits[2])
    assert (emptied[1].sigmoid() == 0).all()
    assert SegHead(4096).to_query.out_features == 256  # Reason3D sizes by default
    assert SegHead(4096).text_hidden_fcs[2].out_features == 512


# ---------------------------------------------------------------- loss


def test_gt_superpoint_mask_majority():
    ids = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    pm = torch.tensor([1, 1, 0, 1, 0, 1, 1, 0, 0, 1], dtype=torch.bool)
    # sp0: 2/3 > .5 -> 1; sp1: 1/2 not > .5 -> 0; sp2: 2/4 -> 0; sp3: 1/1 -> 1; sp4: no points -> 0
    assert gt_superpoint_mask(pm, ids, 5).tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    two = torch.stack([pm, ~pm])
    assert gt_superpoint_mask(two, ids, 5).tolist() == [[1.0, 0, 0, 1, 0], [0.0, 0, 0, 0, 0]]
    with pytest.raises(ModelError, match="outside"):
        gt_superpoint_mask(pm, ids, 3)
    with pytest.raises(ModelError, match="share the last"):
        gt_superpoint_mask(pm[:-1], ids, 5)


def _output(mask_logits: list[list[float]], scores: list[float]) -> QueryDecoderOutput:
    """One sample, one query, one prediction per entry."""
    s = len(mask_logits[0])
    return QueryDecoderOutput(
        [torch.tensor(m).reshape(1, 1, s) for m in mask_logits],
        [torch.tensor([[v]]) for v in scores],
        torch.zeros(1, s, dtype=torch.bool),
    )


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_loss_bce_dice_hand_computed():
    x, t = [2.0, -1.0, 0.0, 3.0], [1.0, 0.0, 0.0, 1.0]
    terms = SegLoss(SegLossConfig(score_weight=0.0))(_output([x], [0.0]), [torch.tensor(t)])
    bce = (_softplus(-2.0) + _softplus(-1.0) + _softplus(0.0) + _softplus(-3.0)) / 4
    p = [_sig(v) for v in x]
    dice = 1 - (2 * (p[0] + p[3]) + 1) / (sum(p) + 2 + 1)
    assert terms["bce"].item() == pytest.approx(bce, rel=1e-6)
    assert terms["dice"].item() == pytest.approx(dice, rel=1e-6)
    assert terms["loss"].item() == pytest.approx(bce + dice, rel=1e-6)
    # summed over predictions: the same prediction twice doubles each term
    twice = SegLoss(SegLossConfig(score_weight=0.0))(_output([x, x], [0.0, 0.0]), [torch.tensor(t)])
    assert twice["bce"].item() == pytest.approx(2 * bce, rel=1e-6)


def test_loss_dice_empty_target():
    x = [-2.0, 1.0, 0.5]
    terms = SegLoss()(_output([x], [0.0]), [torch.zeros(3)])
    p = [_sig(v) for v in x]
    assert terms["dice"].item() == pytest.approx(1 - 1 / (sum(p) + 1), rel=1e-6)
    # an empty prediction of an empty target: Dice 0, IoU 1
    none = SegLoss()(_output([[EMPTY_LOGIT] * 3], [0.0]), [torch.zeros(3)])
    assert none["dice"].item() == pytest.approx(0.0, abs=1e-6)
    assert none["iou"].item() == 1.0 and torch.isfinite(none["loss"])


def test_loss_score_only_where_iou_above_half():
    t = torch.tensor([1.0, 1.0, 1.0, 0.0])
    good = [5.0, 5.0, -5.0, -5.0]  # IoU 2/3 > .5 -> scored
    bad = [5.0, -5.0, -5.0, 5.0]  # IoU 1/4 -> not scored
    cfg = SegLossConfig(bce_weight=0.0, dice_weight=0.0, score_weight=1.0)
    terms = SegLoss(cfg)(_output([good, bad], [0.3, 2.0]), [t])
    assert terms["score"].item() == pytest.approx((_sig(0.3) - 2 / 3) ** 2, rel=1e-6)
    assert terms["loss"].item() == pytest.approx(terms["score"].item(), rel=1e-6)
    assert terms["iou"].item() == pytest.approx(0.25)  # final prediction's IoU
    only_bad = SegLoss(cfg)(_output([bad], [2.0]), [t])
    assert only_bad["score"].item() == 0.0
    # two samples: the MSE is the mean over the gated (sample, query) pairs only
    out = QueryDecoderOutput(
        [torch.tensor([good, bad]).reshape(2, 1, 4)],
        [torch.tensor([[0.3], [-1.0]])],
        torch.zeros(2, 4, dtype=torch.bool),
    )
    two = SegLoss(cfg)(out, [t, t])
    assert two["score"].item() == pytest.approx((_sig(0.3) - 2 / 3) ** 2, rel=1e-6)


def test_loss_sample_mask_and_target_errors():
    t = torch.tensor([1.0, 0.0, 1.0, 0.0])
    out = QueryDecoderOutput(
        [torch.tensor([[1.0, -1.0, 1.0, -1.0], [9.0, 9.0, 9.0, 9.0]]).reshape(2, 1, 4)],
        [torch.zeros(2, 1)],
        torch.zeros(2, 4, dtype=torch.bool),
    )
    first = SegLoss()(
        QueryDecoderOutput([out.mask_logits[0][:1]], [torch.zeros(1, 1)], out.padding_mask[:1]), [t]
    )
    kept = SegLoss()(out, [t, t], sample_mask=torch.tensor([True, False]))
    assert kept["loss"].item() == pytest.approx(first["loss"].item(), rel=1e-6)
    with pytest.raises(ModelError, match="target of sample 1"):
        SegLoss()(out, [t, t[:3]])


# ---------------------------------------------------------------- overfitting


def test_overfits_one_query_to_iou_above_0_9():
    """Seg head + decoder learn two fixed queries' target sets (a batch of two scenes of different
    sizes, so the padded path trains too) from random superpoint features."""
    torch.manual_seed(0)
    cfg = QueryDecoderConfig(d_model=64, num_heads=4, num_layers=2, ffn_dim=128, in_channels=32)
    decoder, head = QueryDecoder(cfg), SegHead(hidden_size=48, d_model=64, proj_dim=64)
    hidden = torch.randn(2, 6, 48)  # fixed "LLM outputs"; [SEG] at position 4 (and 2 and 5 in sample 1)
    positions = torch.zeros(2, 6, dtype=torch.bool)
    positions[0, 4] = positions[1, 2] = positions[1, 5] = True
    feats = [torch.randn(80, 32), torch.randn(50, 32)]
    targets = [torch.zeros(80), torch.zeros(50)]
    targets[0][torch.randperm(80)[:23]] = 1.0
    targets[1][torch.randperm(50)[:9]] = 1.0
    opt = torch.optim.AdamW(list(decoder.parameters()) + list(head.parameters()), lr=1e-3)
    loss_fn = SegLoss()
    for _ in range(150):
        query, _ = head.queries_from_hidden(hidden, positions)
        terms = loss_fn(decoder(query, feats), targets)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    decoder.eval()
    with torch.no_grad():
        query, _ = head.queries_from_hidden(hidden, positions)
        preds = decoder(query, feats).per_sample()
    for pred, target in zip(preds, targets):
        pred, target = pred[0].sigmoid() >= 0.5, target.bool()
        iou = (pred & target).sum().item() / (pred | target).sum().item()
        assert iou > 0.9, iou


def test_bf16_autocast_forward_and_loss():
    """The GPU recipe trains in bf16: under autocast the decoder stays finite and the loss is float32."""
    dec = _decoder().train()
    feats = [torch.randn(300, 8), torch.randn(120, 8)]
    targets = [(torch.rand(300) < 0.4).float(), torch.zeros(120)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = dec(torch.randn(2, 1, 32), feats)
        terms = SegLoss()(out, targets)
    assert out.pred_masks.dtype == torch.bfloat16
    assert (out.pred_masks[1, :, 120:].float().sigmoid() == 0).all()
    assert terms["loss"].dtype == torch.float32 and torch.isfinite(terms["loss"])
    terms["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in dec.parameters() if p.grad is not None)


def test_positions_move_the_mask_and_are_required_when_on():
    torch.manual_seed(0)
    dec = _decoder(positions=True)
    feats, query = [torch.randn(6, 8)], torch.randn(1, 1, 32)
    centres = torch.rand(6, 3) * 4
    here = dec(query, feats, centres=[centres]).pred_masks
    # a shift of the whole room changes nothing (centres are taken relative to the room's mean) ...
    assert torch.allclose(here, dec(query, feats, centres=[centres + 10.0]).pred_masks, atol=1e-4)
    # ... but moving the superpoints around does
    assert not torch.allclose(here, dec(query, feats, centres=[centres.flip(0)]).pred_masks, atol=1e-4)
    with pytest.raises(ModelError, match="superpoint centres"):
        dec(query, feats)
