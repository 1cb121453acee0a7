"""Unit tests of reprobook.geometry.intrinsic: manifolds of known dimension, hand cases."""

import numpy as np
import pytest

from reprobook.geometry import intrinsic


@pytest.mark.parametrize("manifold", [intrinsic.sphere, intrinsic.torus])
@pytest.mark.parametrize("d", [2, 4, 6])
def test_nonlinear_estimators_recover_known_dimensions(manifold, d):
    x = manifold(2000, d, 100, np.random.default_rng(d))
    assert x.shape == (2000, 100)
    twonn = intrinsic.twonn(x)
    assert abs(twonn - d) <= 0.15 * d
    assert intrinsic.twonn_skdim(x) == pytest.approx(twonn, rel=1e-6)  # the same estimator
    assert abs(intrinsic.mle(x) - d) <= 0.2 * d


def test_manifolds_lie_where_they_should():
    rng = np.random.default_rng(0)
    s = intrinsic.sphere(300, 3, 10, rng)
    assert np.allclose(np.linalg.norm(s, axis=1), 1.0)
    t = intrinsic.torus(300, 3, 10, rng)
    assert np.allclose(np.linalg.norm(t, axis=1), np.sqrt(3))  # d unit circles
    with pytest.raises(ValueError, match="ambient"):
        intrinsic.sphere(10, 5, 4, rng)


def test_duplicated_points_are_removed_before_twonn():
    x = intrinsic.sphere(800, 3, 50, np.random.default_rng(1))
    doubled = np.concatenate([x, x[:300]])
    assert np.isfinite(intrinsic.twonn(doubled))
    assert intrinsic.twonn(doubled) == pytest.approx(intrinsic.twonn(x), rel=1e-9)
    assert intrinsic.twonn_skdim(doubled) == pytest.approx(intrinsic.twonn_skdim(x), rel=1e-9)
    assert intrinsic.mle(doubled) == pytest.approx(intrinsic.mle(x), rel=1e-9)
    assert len(intrinsic.distinct(doubled)) == 800


def test_pca_dimension_is_the_official_count_minus_one():
    rng = np.random.default_rng(2)
    basis, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    for d in (1, 3, 5):
        codes = rng.normal(size=(400, d))
        codes = (codes - codes.mean(0)) / codes.std(0)
        x = codes @ basis[:d]
        # d equal directions: cumsum EVR = 1/d, 2/d, ..., 1 -> d - 1 entries below 0.99
        assert intrinsic.pca_dimension(x) == d - 1
    assert intrinsic.pca_dimension(np.ones((5, 3))) == 0


def test_participation_ratio_hand_cases():
    rng = np.random.default_rng(3)
    line = rng.normal(size=(100, 1)) @ np.ones((1, 4))
    assert intrinsic.participation_ratio(line) == pytest.approx(1.0)
    # variances 4, 1 exactly (orthogonal +-2, +-1 points): (4 + 1)^2 / (16 + 1)
    x = np.array([[2.0, 0], [-2, 0], [0, 1], [0, -1]])
    assert intrinsic.participation_ratio(x) == pytest.approx(25 / 17)


def test_estimate_runs_every_estimator():
    x = intrinsic.sphere(300, 2, 10, np.random.default_rng(4))
    out = intrinsic.estimate(x)
    assert set(out) == set(intrinsic.ESTIMATORS)
    assert all(np.isfinite(v) for v in out.values())


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros(5), "2-D"),
        (np.zeros((2, 3)), "at least 3"),
        (np.full((5, 2), np.nan), "finite"),
    ],
)
def test_bad_points_are_refused(x, match):
    with pytest.raises(ValueError, match=match):
        intrinsic.twonn(x)


def test_bad_settings_are_refused():
    x = intrinsic.sphere(50, 2, 5, np.random.default_rng(5))
    with pytest.raises(ValueError, match="unknown estimators"):
        intrinsic.estimate(x, ("nope",))
    with pytest.raises(ValueError, match="threshold"):
        intrinsic.pca_dimension(x, 1.5)
    with pytest.raises(ValueError, match="distinct"):
        intrinsic.twonn(np.ones((10, 3)))
    with pytest.raises(ValueError, match="20 neighbours"):
        intrinsic.mle(x[:15])
    with pytest.raises(ValueError, match="no variance"):
        intrinsic.participation_ratio(np.ones((5, 3)))
