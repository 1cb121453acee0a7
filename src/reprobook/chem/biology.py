"""A synthetic stand-in for Cell Painting: a hidden mode of action and a noisy morphology profile.

No real cell data is used anywhere. The "biology" is a fixed random function of each molecule's
physicochemical descriptors (``reprobook.chem.space.DESCRIPTORS``), which depend on the
substituents as much as on the scaffold, so molecules on unrelated scaffolds can share a
phenotype, the case a morphology-guided generator is meant to exploit:

- activity a(x) = tanh(z(x) W_1 / sqrt(d)) W_2 / sqrt(h), with z the descriptors standardised
  over a reference sample of the space;
- mode-of-action cluster c(x): the nearest of k-means centres (fixed seed) fitted to the
  reference sample's activities;
- profile m(x) = s * mu_{c(x)} + a(x) B + sigma * eps, eps ~ N(0, I) fresh per replicate ("well"),
  so a profile says mostly which cluster a molecule acts through and a little about its own
  activity, and two wells of one molecule differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

from reprobook.chem.space import MoleculeCache


@dataclass
class Biology:
    """The hidden biology of the molecules of a ``MoleculeCache`` (computed on demand)."""

    cache: MoleculeCache
    mean: np.ndarray  # descriptor standardisation
    std: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    centres: np.ndarray  # [K, h] k-means centres of the activities
    centroids: np.ndarray  # [K, P] mu_k
    mixing: np.ndarray  # [h, P] B
    cluster_scale: float
    noise: float

    @property
    def n_clusters(self) -> int:
        return len(self.centroids)

    @property
    def profile_dim(self) -> int:
        return self.centroids.shape[1]

    def activity(self, index) -> np.ndarray:
        """a(x) of molecules ``index``, ``[len, h]``."""
        z = (self.cache.descriptors(index) - self.mean) / self.std
        return np.tanh(z @ self.w1 / np.sqrt(len(self.mean))) @ self.w2 / np.sqrt(len(self.w1[0]))

    def cluster(self, index) -> np.ndarray:
        """c(x) of molecules ``index``: the nearest k-means centre of a(x)."""
        a = self.activity(index)
        return ((a[:, None, :] - self.centres[None]) ** 2).sum(-1).argmin(1)

    def mean_profile(self, index) -> np.ndarray:
        """Noise-free profiles ``[len, P]`` of molecules ``index``."""
        return (
            self.cluster_scale * self.centroids[self.cluster(index)]
            + self.activity(index) @ self.mixing
        )

    def profiles(self, index, rng: np.random.Generator) -> np.ndarray:
        """One noisy well per molecule in ``index`` (``[len, P]``, float32)."""
        mean = self.mean_profile(index)
        return (mean + self.noise * rng.standard_normal(mean.shape)).astype(np.float32)


def make_biology(
    cache: MoleculeCache,
    reference: np.ndarray,
    n_clusters: int = 8,
    profile_dim: int = 48,
    activity_dim: int = 16,
    hidden: int = 32,
    cluster_scale: float = 1.0,
    noise: float = 0.5,
    seed: int = 0,
) -> Biology:
    """Draw the hidden biology, standardised and clustered on the ``reference`` molecules."""
    reference = np.asarray(reference)
    if not 2 <= n_clusters <= len(reference) // 10:
        raise ValueError(
            f"n_clusters must be in [2, {len(reference) // 10}] (ten reference molecules per "
            f"cluster at least), got {n_clusters}"
        )
    if profile_dim < 2 or activity_dim < 1 or hidden < 1:
        raise ValueError("profile_dim must be >= 2 and activity_dim, hidden >= 1")
    if cluster_scale < 0 or noise < 0:
        raise ValueError(f"cluster_scale and noise must be >= 0, got {cluster_scale}, {noise}")
    rng = np.random.default_rng(seed)
    desc = cache.descriptors(reference)
    std = desc.std(0)
    biology = Biology(
        cache=cache, mean=desc.mean(0), std=np.where(std > 0, std, 1.0),
        w1=rng.standard_normal((desc.shape[1], hidden)),
        w2=rng.standard_normal((hidden, activity_dim)),
        centres=np.zeros((n_clusters, activity_dim)),
        centroids=rng.standard_normal((n_clusters, profile_dim)),
        mixing=rng.standard_normal((activity_dim, profile_dim)) / np.sqrt(activity_dim),
        cluster_scale=cluster_scale, noise=noise,
    )  # fmt: skip
    kmeans = KMeans(n_clusters, n_init=4, random_state=seed).fit(biology.activity(reference))
    biology.centres = kmeans.cluster_centers_
    return biology
