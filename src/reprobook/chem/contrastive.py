"""A GMC-style structure-morphology contrastive model and the paper's reward.

Geometric multimodal contrastive learning (GMC, Poklukar et al. 2022), as the paper's
``mmc-gene`` model: a structure encoder (here an MLP on the Morgan fingerprint; the paper uses a
GIN on the molecular graph), a morphology encoder (MLP on the profile) and a joint encoder (on
both, concatenated) map into one space through a shared common encoder whose output is
L2-normalised. Each modality's latent is pulled towards the joint latent of the same molecule by
a symmetric NT-Xent loss (``gmc_loss``), temperature 0.4 as the official config.

The reward of molecule x for a target profile is the paper's
R(x) = clip((cos(z_target, f_struct(x)) + 1) / 2, 1e-4, 1), z_target being the target's morphology
latent; the GFlowNet is trained on R^beta.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

from reprobook.chem.biology import Biology
from reprobook.chem.space import FP_BITS, MoleculeCache

REWARD_MIN = 1e-4


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class GMC(nn.Module):
    """Structure, morphology and joint encoders into one normalised latent space."""

    def __init__(self, profile_dim: int, hidden: int = 256, latent: int = 64) -> None:
        super().__init__()
        self.struct = _mlp([FP_BITS, hidden, hidden])
        self.morph = _mlp([profile_dim, hidden, hidden])
        self.joint = _mlp([FP_BITS + profile_dim, hidden, hidden])
        self.common = _mlp([hidden, hidden, latent])

    def _project(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.common(F.relu(h)), dim=-1)

    def encode_struct(self, fp: torch.Tensor) -> torch.Tensor:
        return self._project(self.struct(fp))

    def encode_morph(self, profile: torch.Tensor) -> torch.Tensor:
        return self._project(self.morph(profile))

    def encode_joint(self, fp: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
        return self._project(self.joint(torch.cat([fp, profile], -1)))


def nt_xent(z_joint: torch.Tensor, z_mod: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric NT-Xent between joint and one modality's normalised latents ``[B, d]``.

    Over the 2B rows [joint; modality], each row's positive is its partner in the other half and
    its negatives are the 2B - 2 other rows (the diagonal is masked), as GMC's loss.
    """
    if z_joint.shape != z_mod.shape or z_joint.ndim != 2:
        raise ValueError(f"latents must both be [B, d], got {z_joint.shape}, {z_mod.shape}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    out = torch.cat([z_joint, z_mod])
    logits = out @ out.T / temperature
    logits = logits.masked_fill(torch.eye(len(out), dtype=torch.bool), float("-inf"))
    b = len(z_joint)
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
    return F.cross_entropy(logits, partner)


def gmc_loss(
    model: GMC, fp: torch.Tensor, profile: torch.Tensor, temperature: float
) -> torch.Tensor:
    """GMC's loss: the NT-Xent of each modality against the joint latent, summed over the
    modalities (each term averaged over its rows), as the official ``GMCLoss``."""
    z_joint = model.encode_joint(fp, profile)
    terms = [
        nt_xent(z_joint, model.encode_struct(fp), temperature),
        nt_xent(z_joint, model.encode_morph(profile), temperature),
    ]
    return torch.stack(terms).sum()


@dataclass
class ContrastiveSettings:
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    temperature: float = 0.4
    hidden: int = 256
    latent: int = 64

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError(
                f"steps must be >= 1 and batch_size >= 2, got {self.steps}, {self.batch_size}"
            )
        if self.lr <= 0 or self.temperature <= 0:
            raise ValueError(f"lr and temperature must be > 0, got {self.lr}, {self.temperature}")


def train_gmc(
    cache: MoleculeCache,
    biology: Biology,
    train_index: np.ndarray,
    settings: ContrastiveSettings,
    seed: int,
    progress: bool = False,
) -> tuple[GMC, list[float]]:
    """Train GMC on molecules ``train_index``, a fresh well per molecule per step."""
    if len(train_index) < settings.batch_size:
        raise ValueError(f"need at least batch_size={settings.batch_size} training molecules")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = GMC(biology.profile_dim, settings.hidden, settings.latent)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    losses = []
    for _ in tqdm(range(settings.steps), desc="GMC", disable=not progress, mininterval=5):
        batch = rng.choice(train_index, settings.batch_size, replace=False)
        fp = cache.fingerprint_tensor(batch)
        profile = torch.from_numpy(biology.profiles(batch, rng))
        loss = gmc_loss(model, fp, profile, settings.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


@torch.no_grad()
def struct_latents(model: GMC, cache: MoleculeCache, index, chunk: int = 4096) -> np.ndarray:
    """f_struct of molecules ``index``, ``[len, latent]`` float32."""
    index = np.asarray(index)
    out = [
        model.encode_struct(cache.fingerprint_tensor(index[i : i + chunk])).numpy()
        for i in range(0, len(index), chunk)
    ]
    return np.concatenate(out)


@torch.no_grad()
def morph_latents(model: GMC, profiles: np.ndarray) -> np.ndarray:
    return model.encode_morph(torch.as_tensor(profiles, dtype=torch.float32)).numpy()


def flat_reward(z_target: np.ndarray, z_struct: np.ndarray) -> np.ndarray:
    """The paper's R = clip((cos(z_target, z) + 1) / 2, 1e-4, 1) of latents ``[..., d]``."""
    z_target = np.asarray(z_target, dtype=np.float64)
    z_struct = np.asarray(z_struct, dtype=np.float64)
    if z_target.shape[-1] != z_struct.shape[-1]:
        raise ValueError(f"latent sizes differ: {z_target.shape[-1]} vs {z_struct.shape[-1]}")
    cos = (z_struct @ z_target) / (
        np.linalg.norm(z_struct, axis=-1) * np.linalg.norm(z_target) + 1e-12
    )
    return np.clip((cos + 1) / 2, REWARD_MIN, 1.0)


@torch.no_grad()
def retrieval_accuracy(
    model: GMC,
    cache: MoleculeCache,
    biology: Biology,
    index: np.ndarray,
    rng: np.random.Generator,
    top: tuple[int, ...] = (1, 5),
) -> dict[str, float]:
    """Profile-to-structure retrieval among the molecules ``index``: each molecule's fresh well
    is matched against every candidate's f_struct. Returns top-k accuracies, the rate at which
    the best match shares the query's cluster, and their chance levels."""
    index = np.asarray(index)
    z_m = morph_latents(model, biology.profiles(index, rng))
    z_s = struct_latents(model, cache, index)
    rank = np.argsort(-(z_m @ z_s.T), axis=1)
    hit = rank == np.arange(len(index))[:, None]
    out = {f"top{k}": float(hit[:, :k].any(1).mean()) for k in top}
    out.update({f"chance_top{k}": k / len(index) for k in top})
    clusters = biology.cluster(index)
    out["cluster"] = float((clusters[rank[:, 0]] == clusters).mean())
    out["chance_cluster"] = float(np.sum(np.bincount(clusters) ** 2) / len(index) ** 2)
    return out
