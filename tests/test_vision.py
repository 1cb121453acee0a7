"""Tests of reprobook.vision: scenes, the DINOv2 encoder built from a config, pre-training,
slot attention and its decoder, and the object-discovery metrics (hand cases, checked against
scikit-learn's adjusted_rand_score)."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from reprobook.vision import encoder as enc_mod
from reprobook.vision import masks, scenes, slots, ssl


@pytest.fixture(scope="module")
def small_encoder():
    torch.manual_seed(0)
    return enc_mod.build_encoder(image_size=32, patch_size=8, dim=32, depth=2, heads=2)


# --- scenes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", sorted(scenes.DOMAINS))
def test_scenes_shapes_ranges_and_object_counts(domain):
    images, labels = scenes.make_scenes(domain, 12, 32, seed=1)
    assert images.shape == (12, 3, 32, 32) and labels.shape == (12, 32, 32)
    assert images.dtype == torch.float32 and images.min() >= 0 and images.max() <= 1
    lo, hi = scenes.DOMAINS[domain].n_objects
    assert int(labels.max()) <= hi
    assert all(int(m.max()) >= 1 for m in labels)  # every scene shows at least one object


def test_scenes_are_reproducible_and_domains_differ():
    a = scenes.make_scenes("diverse", 4, 32, seed=3)[0]
    assert torch.equal(a, scenes.make_scenes("diverse", 4, 32, seed=3)[0])
    assert not torch.equal(a, scenes.make_scenes("diverse", 4, 32, seed=4)[0])
    assert not torch.equal(a, scenes.make_scenes("simple", 4, 32, seed=3)[0])


def test_simple_domain_is_plain_inside_each_object():
    images, labels = scenes.make_scenes("simple", 6, 32, seed=0)
    for img, lab in zip(images, labels, strict=True):
        for k in range(1, int(lab.max()) + 1):
            inside = img[:, lab == k]
            if inside.shape[1] > 4:  # plain colour + lighting + noise of sd 0.02
                assert inside.std(1).max() < 0.06


def test_mixed_domains_draw_both_training_looks():
    images, labels = scenes.make_scenes("crowded", 40, 32, seed=0)
    plain = [
        float(img[:, lab == 0].std(1).max()) < 0.06 for img, lab in zip(images, labels, strict=True)
    ]
    assert 5 < sum(plain) < 35  # plain (simple) and textured (diverse) backgrounds, about half each


def test_shape_mask_hand_cases():
    ys, xs = np.mgrid[0:21, 0:21].astype(np.float32)
    circle = scenes.shape_mask("circle", ys, xs, (10, 10), 5, 0.0)
    assert circle[10, 10] and circle[10, 15] and not circle[10, 16] and not circle[4, 4]
    square = scenes.shape_mask("square", ys, xs, (10, 10), 5, 0.0)
    assert square[14, 14] and not square[15, 10]
    assert circle.sum() == pytest.approx(math.pi * 25, rel=0.1)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: scenes.make_scenes("coco", 4, 32, 0), "domain must be one of"),
        (lambda: scenes.make_scenes("simple", 0, 32, 0), "n must be a positive int"),
        (lambda: scenes.make_scenes("simple", 4, 30, 0), "size must be a multiple of 8"),
        (
            lambda: scenes.texture("wood", *np.mgrid[0:8, 0:8], (4, 4), np.random.default_rng()),
            "texture",
        ),
    ],
)
def test_scene_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- encoder ----------------------------------------------------------------------------------


def test_encoder_features_skip_cls_and_final_norm(small_encoder):
    x = torch.rand(2, 3, 32, 32)
    feats, cls = small_encoder(x)
    assert feats.shape == (2, 16, 32) and cls.shape == (2, 32)
    pixel = (x - small_encoder.mean) / small_encoder.std
    out = small_encoder.vit(pixel_values=pixel, output_hidden_states=True)
    assert torch.allclose(feats, out.hidden_states[-1][:, 1:])
    assert not torch.allclose(feats, out.last_hidden_state[:, 1:])  # before the final norm


def test_encoder_resizes_and_masks(small_encoder):
    feats, _ = small_encoder(torch.rand(1, 3, 48, 48))
    assert feats.shape == (1, 16, 32)
    x = torch.rand(1, 3, 32, 32)
    masked = torch.zeros(1, 16, dtype=torch.bool)
    masked[0, :8] = True
    assert not torch.allclose(small_encoder(x, masked)[0], small_encoder(x)[0])
    with pytest.raises(ValueError, match="images must be"):
        small_encoder(torch.rand(3, 32, 32))


def test_load_encoder_by_name_round_trips_a_saved_config_model(small_encoder, tmp_path):
    small_encoder.vit.save_pretrained(tmp_path)
    loaded = enc_mod.load_encoder(str(tmp_path), input_size=32)
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(loaded(x)[0], small_encoder(x)[0], atol=1e-6)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        enc_mod.load_encoder(str(tmp_path), input_size=30)


def test_blocks_cover_every_parameter_once(small_encoder):
    groups = enc_mod.blocks(small_encoder)
    assert len(groups) == 2
    ids = [id(p) for g in groups for p in g]
    assert len(ids) == len(set(ids)) == len(list(small_encoder.parameters()))


def test_build_encoder_errors():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        enc_mod.build_encoder(image_size=30, patch_size=8)
    with pytest.raises(ValueError, match="multiple of heads"):
        enc_mod.build_encoder(dim=30, heads=4)


# --- pre-training -----------------------------------------------------------------------------


def test_random_views_keep_shape_and_range():
    g = torch.Generator().manual_seed(0)
    views = ssl.random_views(torch.rand(5, 3, 32, 32), (0.3, 1.0), g)
    assert views.shape == (5, 3, 32, 32) and views.min() >= 0 and views.max() <= 1


def test_pretrain_runs_and_returns_teacher_weights():
    torch.manual_seed(0)
    encoder = enc_mod.build_encoder(image_size=32, patch_size=8, dim=32, depth=2, heads=2)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    images, _ = scenes.make_scenes("diverse", 64, 32, seed=0)
    settings = ssl.PretrainSettings(steps=30, batch_size=16, warmup=5, n_prototypes=32)
    history = ssl.pretrain(encoder, images, settings, seed=0)
    assert len(history["dino"]) == 30 and all(math.isfinite(v) for v in history["ibot"])
    # the DINO loss rises at first as the teacher sharpens, so no trend is asserted here
    assert any(not torch.equal(before[k], v) for k, v in encoder.state_dict().items())


# --- slot attention and decoder ---------------------------------------------------------------


def test_slot_attention_shapes_and_normalisation():
    sa = slots.SlotAttention(dim_in=16, dim=8, iterations=2)
    s, attn = sa(torch.randn(3, 10, 16), n_slots=4, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 4, 8) and attn.shape == (3, 4, 10)
    assert torch.allclose(attn.sum(1), torch.ones(3, 10))
    s5, _ = sa(torch.randn(3, 10, 16), n_slots=5)  # the slot count may change at test time
    assert s5.shape == (3, 5, 8)


def test_decoder_alpha_sums_to_one_and_top_k_keeps_k_slots():
    torch.manual_seed(0)
    dec = slots.PatchDecoder(dim=8, out_dim=6, n_patches=10, hidden=16)
    s = torch.randn(2, 5, 8)
    recon, alpha = dec(s)
    assert recon.shape == (2, 10, 6) and torch.allclose(alpha.sum(1), torch.ones(2, 10))
    scores = torch.rand(2, 5, 10)
    recon_k, alpha_k = dec(s, top_k=3, scores=scores)
    assert torch.allclose(alpha_k.sum(1), torch.ones(2, 10), atol=1e-6)
    assert ((alpha_k > 0).sum(1) <= 3).all()
    top = scores.topk(3, dim=1).indices
    outside = torch.ones_like(alpha_k, dtype=torch.bool).scatter(1, top, False)
    assert (alpha_k[outside] == 0).all()
    # decoding only the chosen slots equals decoding all with the others' alpha at -inf
    out = dec.mlp(s[:, :, None, :] + dec.pos)
    logits = out[..., -1].masked_fill(outside, -math.inf)
    manual = (torch.softmax(logits, 1)[..., None] * out[..., :-1]).sum(1)
    assert torch.allclose(recon_k, manual, atol=1e-5)
    with pytest.raises(ValueError, match="scores"):
        dec(s, top_k=3)


def test_param_groups_blockwise_decay(small_encoder):
    model = slots.Dinosaur(small_encoder, slots.ModelSettings(slot_dim=16, decoder_hidden=16))
    settings = slots.TrainSettings(finetune=True, encoder_lr_factor=0.1, block_decay=0.5)
    scales = [g["lr_scale"] for g in slots.param_groups(model, settings)]
    assert scales == pytest.approx([1.0, 0.1 * 0.5, 0.1])
    assert len(slots.param_groups(model, slots.TrainSettings())) == 1


def test_standardise_per_token():
    z = slots.standardise(torch.randn(2, 3, 50) * 4 + 2)
    assert torch.allclose(z.mean(-1), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(z.std(-1, unbiased=False), torch.ones(2, 3), atol=1e-3)


def test_training_reduces_loss_frozen_and_finetuned():
    torch.manual_seed(0)
    encoder = enc_mod.build_encoder(image_size=32, patch_size=8, dim=32, depth=2, heads=2)
    images, labels = scenes.make_scenes("simple", 64, 32, seed=0)
    targets = slots.encode(encoder, images)
    ms = slots.ModelSettings(n_slots=4, slot_dim=16, decoder_hidden=32)
    frozen = slots.Dinosaur(encoder.frozen_copy(), ms)
    losses = slots.train(
        frozen, None, targets, slots.TrainSettings(steps=40, batch_size=8, lr=2e-3, warmup=2), 0
    )
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    ft = slots.Dinosaur(
        encoder.frozen_copy(),
        slots.ModelSettings(n_slots=4, slot_dim=16, decoder_hidden=32, top_k=2),
    )
    before = [p.clone() for p in ft.encoder.parameters()]
    ts = slots.TrainSettings(
        steps=10, batch_size=8, finetune=True, normalise_targets=True, warmup=2
    )
    slots.train(ft, images, targets, ts, 0)
    assert any(not torch.equal(a, b) for a, b in zip(before, ft.encoder.parameters(), strict=True))
    assert not any(p.requires_grad for p in ft.encoder.parameters())  # frozen again after training
    pred = slots.predict_masks(ft, images[:5], n_slots=6, seed=0)
    assert pred.shape == (5, 32, 32) and int(pred.max()) < 6
    with pytest.raises(ValueError, match="fine-tuning needs the images"):
        slots.train(ft, None, targets, ts, 0)
    with pytest.raises(ValueError, match="must pair up"):
        slots.train(ft, images[:10], targets, ts, 0)
    with pytest.raises(ValueError, match="targets must be"):
        slots.train(ft, images, targets[:, :3], ts, 0)
    with pytest.raises(ValueError, match="warmup must be positive"):
        slots.train(ft, images, targets, slots.TrainSettings(warmup=0), 0)
    with pytest.raises(ValueError, match="top_k must be"):
        slots.Dinosaur(encoder, slots.ModelSettings(n_slots=4, top_k=0))


# --- metrics ----------------------------------------------------------------------------------


def test_fg_ari_ignores_background_and_is_permutation_invariant():
    true = torch.tensor([[[0, 0, 1, 1], [0, 0, 2, 2]]])
    perfect = torch.tensor([[[5, 6, 3, 3], [7, 7, 1, 1]]])  # the background may be split at will
    assert masks.fg_ari_per_image(true, perfect)[0] == pytest.approx(1.0)
    merged = torch.tensor([[[0, 0, 0, 0], [0, 0, 0, 0]]])
    assert masks.fg_ari_per_image(true, merged)[0] == pytest.approx(0.0)


def test_fg_ari_matches_sklearn_on_foreground_pixels():
    rng = np.random.default_rng(0)
    true = torch.from_numpy(rng.integers(0, 4, size=(6, 8, 8)))
    pred = torch.from_numpy(rng.integers(0, 3, size=(6, 8, 8)))
    ours = masks.fg_ari_per_image(true, pred)
    for i in range(6):
        fg = true[i].numpy().ravel() > 0
        ref = adjusted_rand_score(true[i].numpy().ravel()[fg], pred[i].numpy().ravel()[fg])
        assert ours[i] == pytest.approx(ref)


def test_fg_ari_single_object_and_empty_image():
    true = torch.tensor([[[0, 1], [1, 1]], [[0, 0], [0, 0]]])
    pred = torch.tensor([[[0, 2], [2, 2]], [[0, 1], [1, 0]]])
    scores = masks.fg_ari_per_image(true, pred)
    assert scores[0] == pytest.approx(1.0) and math.isnan(scores[1])


def test_mbo_hand_case():
    true = torch.tensor([[[1, 1, 0, 0], [2, 2, 0, 0]]])
    pred = torch.tensor([[[0, 0, 0, 0], [1, 1, 0, 0]]])
    # object 1: best IoU with slot 0 = 2/6; object 2: with slot 1 = 2/2
    assert masks.mbo_per_image(true, pred)[0] == pytest.approx((2 / 6 + 1) / 2)
    assert masks.score(true, true)["mbo"] == pytest.approx(1.0)


def test_metric_errors():
    with pytest.raises(ValueError, match="one shape"):
        masks.fg_ari_per_image(
            torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 3, dtype=torch.long)
        )
    with pytest.raises(ValueError, match="integer tensors"):
        masks.score(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="non-negative"):
        masks.mbo_per_image(
            -torch.ones(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long)
        )
