"""The exported identity head: PCA and LDA of backbone features (synthetic features; also the
ridge map to a teacher that the identity benches use), and the choice among the trained, PCA
and LDA heads on a real (randomly initialised) network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from face_mtl.train.embedding import pca_projection


def _low_rank_features(samples: int, width: int, rank: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(width, rank, generator=generator, dtype=torch.float64))
    # Distinct spreads along each axis, so the principal axes are well defined.
    codes = torch.randn(samples, rank, generator=generator, dtype=torch.float64) * torch.tensor([5.0, 3.0, 1.5])[:rank]
    offset = torch.randn(width, generator=generator, dtype=torch.float64) * 4
    return codes @ basis.T + offset, basis, offset


def test_projection_keeps_the_leading_axes_and_centres():
    features, basis, offset = _low_rank_features(300, 20, 3)
    weight, bias = pca_projection(features, size=5)
    assert weight.shape == (5, 20) and bias.shape == (5,)
    w = weight.double()
    torch.testing.assert_close(w @ w.T, torch.eye(5, dtype=torch.float64), atol=1e-5, rtol=0)
    # The first three rows span the features' subspace; the mean maps to zero.
    torch.testing.assert_close(torch.linalg.det(w[:3] @ basis).abs(), torch.tensor(1.0, dtype=torch.float64), atol=1e-4, rtol=0)
    projected = features.float() @ weight.T + bias
    torch.testing.assert_close(projected.mean(dim=0), torch.zeros(5), atol=1e-3, rtol=0)
    variances = projected.var(dim=0)
    assert variances[0] > variances[1] > variances[2] > 100 * variances[3]
    # Cosine similarity of projections equals that of the centred features (nothing lost).
    centred = features - features.mean(dim=0)
    expected = F.normalize(centred, dim=1) @ F.normalize(centred, dim=1).T
    actual = F.normalize(projected.double(), dim=1) @ F.normalize(projected.double(), dim=1).T
    torch.testing.assert_close(actual, expected, atol=1e-3, rtol=0)


def test_rows_beyond_the_sample_count_are_zero():
    features, _, _ = _low_rank_features(4, 20, 3)
    weight, bias = pca_projection(features, size=8)
    assert float(weight[4:].abs().max()) == 0.0 and float(bias[4:].abs().max()) == 0.0
    assert float(weight[:3].norm(dim=1).min()) > 0.999


def test_lda_keeps_what_tells_people_apart_where_pca_keeps_the_largest_variance():
    from face_mtl.train.embedding import lda_projection

    rng = np.random.default_rng(0)
    people = np.repeat(np.arange(6), 40)
    features = rng.normal(size=(len(people), 10))
    features[:, 0] *= 20.0  # large variance unrelated to the person (lighting, pose)
    features[:, 1] += 4.0 * people  # small differences that identify the person
    features = torch.tensor(features, dtype=torch.float32)

    def nearest_mean_accuracy(weight, bias):
        projected = (features @ weight.T + bias).numpy()
        means = np.stack([projected[people == p].mean(axis=0) for p in range(6)])
        guesses = np.argmin(((projected[:, None] - means[None]) ** 2).sum(axis=2), axis=1)
        return float((guesses == people).mean())

    lda = lda_projection(features, people, size=1)
    pca = pca_projection(features, size=1)
    assert abs(float(lda[0][0, 1])) > 10 * abs(float(lda[0][0, 0]))  # the identifying axis
    assert nearest_mean_accuracy(*lda) > 0.8 > 0.4 > nearest_mean_accuracy(*pca)
    weight, bias = lda_projection(features, people, size=12)  # more rows than features: zeros
    assert weight.shape == (12, 10) and bias.shape == (12,) and not weight[10:].any()


def test_ridge_recovers_a_linear_teacher_and_shrinks_towards_zero_as_strength_grows():
    from face_mtl.train.embedding import ridge_projection

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(500, 8, generator=generator, dtype=torch.float64) * 3 + 5
    true_map = torch.randn(4, 8, generator=generator, dtype=torch.float64)
    targets = (features - features.mean(dim=0)) @ true_map.T
    weight, bias = ridge_projection(features, targets, strength=1e-6)
    assert weight.shape == (4, 8) and bias.shape == (4,)
    torch.testing.assert_close(weight.double(), true_map, atol=1e-3, rtol=0)
    torch.testing.assert_close(features.float() @ weight.T + bias, targets.float(), atol=1e-2, rtol=0)
    weaker, _ = ridge_projection(features, targets, strength=10.0)
    assert float(weaker.norm()) < 0.5 * float(weight.norm())


def _people_features(people: int, photos: int, width: int = 12, seed: int = 0):
    """Features in which a weak direction tells people apart and strong ones do not."""
    rng = np.random.default_rng(seed)
    identities = np.repeat(np.arange(people), photos)
    features = rng.normal(size=(len(identities), width))
    features[:, 0] *= 10.0
    features[:, 1:4] += rng.normal(size=(people, 3))[identities] * 3.0
    return torch.tensor(features, dtype=torch.float32), identities


def test_lda_shrinkage_is_chosen_by_cross_validation_over_people():
    from face_mtl.train.embedding import SHRINKAGES, lda_shrinkage

    features, identities = _people_features(people=24, photos=6)
    chosen, scores = lda_shrinkage(features, identities, size=4)
    assert set(scores) == set(SHRINKAGES) and chosen in SHRINKAGES
    assert scores[chosen] == max(scores.values())
    # The identifying directions are found on unseen people: far better than cosine of the
    # raw features, which the large person-blind direction dominates.
    from face_mtl.evaluate import verification_accuracy, verification_pairs

    pairs, same = verification_pairs(identities, 3000, 0)
    raw = F.normalize(features, dim=1).numpy()
    raw_accuracy = verification_accuracy((raw[pairs[:, 0]] * raw[pairs[:, 1]]).sum(axis=1), same)["accuracy"]
    assert scores[chosen] > 0.8 and scores[chosen] > raw_accuracy + 0.15
    with pytest.raises(ValueError, match="too few"):
        lda_shrinkage(features[:30], identities[:30], size=4)


def _crop_set(people: int, photos: int, size: int, seed: int):
    from face_mtl.data.sets import CropSet

    rng = np.random.default_rng(seed)
    identities = np.repeat(np.arange(people), photos)
    # Each person is a colour and a stripe pattern of their own, plus per-photo noise.
    colours = rng.integers(40, 216, size=(people, 1, 1, 3))
    stripes = (np.arange(size)[None, :, None] // (2 + identities[:, None, None] % 5) % 2) * 30
    crops = colours[identities] + stripes[..., None] + rng.normal(0, 12, size=(len(identities), size, size, 3))
    count = len(identities)
    return CropSet(np.clip(crops, 0, 255).astype(np.uint8), np.zeros((count, 8), np.float32),
                   np.full(count, np.nan, np.float32), np.full(count, -1), np.full(count, -1), identities,
                   np.zeros((count, 128), np.float32))


def test_the_chosen_identity_head_is_the_best_on_held_out_people_and_is_left_in_the_model():
    from face_mtl.config import ModelConfig
    from face_mtl.model import FaceMTLNet
    from face_mtl.train.embedding import HEADS, choose_identity_head

    torch.manual_seed(0)
    config = ModelConfig(backbone="mobilenetv4_conv_small", input_size=32)
    model = FaceMTLNet(config).eval()
    people, held_out = _crop_set(16, 4, 40, seed=1), _crop_set(8, 4, 40, seed=2)
    trained = model.heads["embedding"].weight.detach().clone()

    head, scores, summary = choose_identity_head(model, config, people, held_out, "cpu")
    assert set(summary["verification"]) == set(HEADS)
    assert summary["identity_head"] == head.name
    assert summary["verification"][head.name] == max(summary["verification"].values())
    assert summary["shrinkage"] in summary["cross_validated"] if head.name == "lda" else "shrinkage" not in summary
    torch.testing.assert_close(model.heads["embedding"].weight, head.weight)
    assert scores.people == 8 and len(scores.similarities) == len(scores.is_same)

    # Asked for by name: that head alone; the trained one leaves the weights as they were.
    model.heads["embedding"].weight.data.copy_(trained)
    head, _, summary = choose_identity_head(model, config, people, held_out, "cpu", kind="trained")
    assert head.name == "trained" and set(summary["verification"]) == {"trained"}
    torch.testing.assert_close(model.heads["embedding"].weight, trained)
    with pytest.raises(ValueError, match="identity head"):
        choose_identity_head(model, config, people, held_out, "cpu", kind="random")


def test_too_few_training_people_leave_lda_out_of_the_best_choice():
    from face_mtl.config import ModelConfig
    from face_mtl.model import FaceMTLNet
    from face_mtl.train.embedding import choose_identity_head

    torch.manual_seed(0)
    config = ModelConfig(backbone="mobilenetv4_conv_small", input_size=32)
    model = FaceMTLNet(config).eval()
    _, _, summary = choose_identity_head(model, config, _crop_set(5, 4, 40, 1), _crop_set(4, 4, 40, 2), "cpu")
    assert set(summary["verification"]) == {"trained", "pca"}


def test_cached_features_are_the_backbone_of_the_inference_view_and_of_its_mirror_image():
    from face_mtl.config import ModelConfig
    from face_mtl.data.views import eval_batch
    from face_mtl.evaluate import cached_features
    from face_mtl.model import FaceMTLNet

    torch.manual_seed(0)
    config = ModelConfig(backbone="resnet18", input_size=32)
    model = FaceMTLNet(config).eval()
    crops = _crop_set(3, 3, 40, seed=3).crops  # 9 faces, batches of 4 below
    one, two = cached_features(model, crops, config, batch=4), cached_features(model, crops, config, mirror=True, batch=4)
    width = model.heads["age"].in_features
    assert one.shape == (9, 1, width) and two.shape == (9, 2, width) and one.dtype == torch.float32
    x = eval_batch(torch.from_numpy(crops), config.input_size, config.mean, config.std)
    with torch.no_grad():
        plain, mirrored = model.backbone(x), model.backbone(torch.flip(x, dims=[3]))
    torch.testing.assert_close(one[:, 0], plain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(two[:, 0], plain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(two[:, 1], mirrored, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(two[:, 1], plain, atol=1e-3)  # the mirror view is another input
    # bf16 autocast: the same features to about two digits.
    rough = cached_features(model, crops, config, precision="bf16", mirror=True)
    assert (rough - two).abs().max() < 0.05 * two.abs().max()
    assert len(cached_features(model, crops[:0], config, mirror=True)) == 0


def test_a_head_replaced_reads_back_and_a_head_of_another_shape_is_refused():
    from face_mtl.config import ModelConfig
    from face_mtl.model import FaceMTLNet

    model = FaceMTLNet(ModelConfig(backbone="mobilenetv4_conv_small", input_size=32))
    weight, bias = model.head_parameters("gender")
    weight += 1.0  # a copy: the model's head is untouched
    assert not torch.equal(model.heads["gender"].weight, weight)
    model.set_head("gender", weight, bias - 1.0)
    torch.testing.assert_close(model.heads["gender"].weight, weight)
    torch.testing.assert_close(model.head_parameters("gender")[1], bias - 1.0)
    with pytest.raises(ValueError, match="gender"):
        model.set_head("gender", weight[:1], bias[:1])
