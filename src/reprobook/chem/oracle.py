"""The independent oracle: a fingerprint -> mode-of-action cluster classifier.

As the paper's ``MultiTask_FP_PL`` cluster oracle: an MLP with two hidden layers of 64 on Morgan
count fingerprints (radius 3, 2,048 bits), softmax over clusters, trained on molecules disjoint
from the contrastive model's. A molecule is an oracle hit for a target when the oracle gives the
target's cluster a probability of at least 0.3, the paper's cut.
"""

from __future__ import annotations

import numpy as np
from rdkit.Chem import rdFingerprintGenerator
from sklearn.neural_network import MLPClassifier

from reprobook.chem.space import FragmentSpace

HIT_PROBABILITY = 0.3
_COUNT_GEN = rdFingerprintGenerator.GetMorganGenerator(radius=3, fpSize=2048)


def count_fingerprints(space: FragmentSpace, index: np.ndarray) -> np.ndarray:
    """Morgan count fingerprints (radius 3, 2,048 bits) ``[len, 2048]`` of molecules ``index``."""
    return np.stack(
        [_COUNT_GEN.GetCountFingerprintAsNumPy(space.mol(space.combos(i))) for i in index]
    ).astype(np.float32)


def train_oracle(
    space: FragmentSpace, index: np.ndarray, clusters: np.ndarray, seed: int, max_iter: int = 200
) -> MLPClassifier:
    """Fit the oracle on molecules ``index`` with their (true) clusters."""
    if len(index) != len(clusters):
        raise ValueError(f"index and clusters differ in length: {len(index)} vs {len(clusters)}")
    model = MLPClassifier(
        hidden_layer_sizes=(64, 64), max_iter=max_iter, early_stopping=True, random_state=seed
    )
    return model.fit(count_fingerprints(space, index), clusters)


def hit_probability(
    model: MLPClassifier, space: FragmentSpace, index: np.ndarray, cluster: int
) -> np.ndarray:
    """The oracle's probability that each molecule in ``index`` acts through ``cluster``."""
    classes = list(model.classes_)
    if cluster not in classes:
        raise ValueError(f"cluster {cluster} is not among the oracle's classes {classes}")
    proba = model.predict_proba(count_fingerprints(space, index))
    return proba[:, classes.index(cluster)]
