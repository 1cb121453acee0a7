"""A combinatorial fragment space of drug-like molecules, built and sanitised with RDKit.

A molecule is a scaffold with four substitution sites, each holding one substituent (hydrogen
included): the combination ``(scaffold, s_1, s_2, s_3, s_4)``. The scaffolds are asymmetric, so
every combination is a distinct molecule (``enumerate_space`` checks it on canonical SMILES).
Scaffolds differ in ring systems and linkers, so molecules on different scaffolds are
structurally far apart (Morgan-fingerprint Tanimoto well below 0.3), while the substituents
are the shared chemistry that the synthetic biology of ``reprobook.chem.biology`` reads.

Molecules are assembled with ``Chem.molzip`` on atom-mapped attachment points, sanitised and
written as canonical SMILES; fingerprints are Morgan radius 2, 2,048 bits, as in the paper's
evaluation. The full space (8 scaffolds, 20 substituents: 1,280,000 molecules) is too large to
build on two cores, so ``MoleculeCache`` builds a molecule the first time anything asks for it,
as a generator's reward is computed on what it draws; ``enumerate_space`` builds all of a
small space.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from rdkit import Chem, DataStructs
from rdkit.Chem import Crippen, Descriptors, Lipinski, rdFingerprintGenerator, rdMolDescriptors
from tqdm.std import tqdm

N_SITES = 4
FP_BITS = 2048
FP_RADIUS = 2
# (name, SMILES with attachment points [*:1] ... [*:4] on ring carbons)
SCAFFOLDS = (
    ("benzamide", "O=C(Nc1ccc([*:3])nc1[*:4])c1ccc([*:1])c([*:2])c1"),
    ("indole", "Cn1c([*:3])c([*:4])c2cc([*:1])c([*:2])cc21"),
    ("aryl-piperazine", "O=C(c1ccc([*:1])cc1[*:4])N1CCN(c2ncc([*:2])cc2[*:3])CC1"),
    ("aminothiazole", "[*:1]c1ccc(-c2nc(NC(=O)c3ccc([*:2])cc3)sc2[*:4])cc1[*:3]"),
    ("quinazoline", "[*:1]c1nc(NCc3ccc([*:3])cc3[*:4])c2cc([*:2])ccc2n1"),
    ("sulfonamide", "O=S(=O)(Nc1cccc([*:1])c1[*:4])c1ccc([*:2])cc1[*:3]"),
    ("pyrazole", "Cc1nn(-c2ccc([*:1])cc2[*:4])c([*:2])c1C(=O)Nc1ccc([*:3])cc1"),
    ("biaryl urea", "O=C(Nc1ccc([*:1])cc1)Nc1cc(-c2ccc([*:2])cc2)cc([*:3])c1[*:4]"),
)
# (name, SMILES with one attachment point [*])
SUBSTITUENTS = (
    ("H", "[H][*]"),
    ("F", "F[*]"),
    ("Cl", "Cl[*]"),
    ("methyl", "C[*]"),
    ("methoxy", "CO[*]"),
    ("CF3", "FC(F)(F)[*]"),
    ("cyano", "N#C[*]"),
    ("hydroxy", "O[*]"),
    ("morpholino", "C1COCCN1[*]"),
    ("methylsulfonyl", "CS(=O)(=O)[*]"),
    ("Br", "Br[*]"),
    ("ethyl", "CC[*]"),
    ("isopropyl", "CC(C)[*]"),
    ("dimethylamino", "CN(C)[*]"),
    ("acetyl", "CC(=O)[*]"),
    ("carboxamide", "NC(=O)[*]"),
    ("carboxy", "OC(=O)[*]"),
    ("cyclopropyl", "C1CC1[*]"),
    ("OCF3", "FC(F)(F)O[*]"),
    ("methylthio", "CS[*]"),
)
DESCRIPTORS = ("logP", "TPSA", "MW", "HBD", "HBA", "rotatable", "aromatic rings", "halogens")
_HALOGEN = Chem.MolFromSmarts("[F,Cl,Br,I]")


@dataclass(frozen=True)
class FragmentSpace:
    """The first ``n_scaffolds`` scaffolds and ``n_substituents`` substituents of the tables."""

    n_scaffolds: int = len(SCAFFOLDS)
    n_substituents: int = len(SUBSTITUENTS)

    def __post_init__(self) -> None:
        if not isinstance(self.n_scaffolds, int) or not 1 <= self.n_scaffolds <= len(SCAFFOLDS):
            raise ValueError(
                f"n_scaffolds must be an integer in [1, {len(SCAFFOLDS)}], got {self.n_scaffolds!r}"
            )
        if not isinstance(self.n_substituents, int) or not (
            2 <= self.n_substituents <= len(SUBSTITUENTS)
        ):
            raise ValueError(
                f"n_substituents must be an integer in [2, {len(SUBSTITUENTS)}], "
                f"got {self.n_substituents!r}"
            )

    @property
    def size(self) -> int:
        return self.n_scaffolds * self.n_substituents**N_SITES

    def _radix(self) -> np.ndarray:
        k = self.n_substituents
        return np.array([k**N_SITES] + [k ** (N_SITES - 1 - i) for i in range(N_SITES)])

    def index(self, combos: np.ndarray | torch.Tensor) -> np.ndarray:
        """Flat index of combinations ``[..., 1 + N_SITES]`` (scaffold most significant)."""
        combos = np.asarray(combos, dtype=np.int64)
        if combos.shape[-1] != 1 + N_SITES:
            raise ValueError(f"combinations need a last axis of {1 + N_SITES}, got {combos.shape}")
        limits = [self.n_scaffolds] + [self.n_substituents] * N_SITES
        if (combos < 0).any() or (combos >= np.array(limits)).any():
            raise ValueError(f"combination entries must lie in [0, {limits}) per position")
        return combos @ self._radix()

    def combos(self, index: np.ndarray | int) -> np.ndarray:
        """The combinations ``[..., 1 + N_SITES]`` of flat indices (inverse of ``index``)."""
        index = np.asarray(index, dtype=np.int64)
        if (index < 0).any() or (index >= self.size).any():
            raise ValueError(f"indices must lie in [0, {self.size})")
        out = np.empty(index.shape + (1 + N_SITES,), dtype=np.int64)
        rest = index.copy()
        for position, radix in enumerate(self._radix()):
            out[..., position], rest = rest // radix, rest % radix
        return out

    def mol(self, combo) -> Chem.Mol:
        """The sanitised molecule of one combination (scaffold, s_1, ..., s_4)."""
        self.index(np.asarray(combo))  # validates
        scaffold, *sites = (int(c) for c in combo)
        parts = [SCAFFOLDS[scaffold][1]] + [
            SUBSTITUENTS[s][1].replace("[*]", f"[*:{i + 1}]") for i, s in enumerate(sites)
        ]
        mol = Chem.RemoveHs(Chem.molzip(Chem.MolFromSmiles(".".join(parts))))
        Chem.SanitizeMol(mol)
        return mol

    def analogue_shells(self, target: int, n: int) -> list[np.ndarray]:
        """Molecules around ``target`` by the number of changed positions (scaffold or
        substituent): the shell at one change, at two, ..., until the shells hold ``n``
        molecules (the target itself is left out)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        base = self.combos(target)
        limits = [self.n_scaffolds] + [self.n_substituents] * N_SITES
        shells: list[np.ndarray] = []
        count = 0
        for distance in range(1, len(limits) + 1):
            shell = []
            for positions in itertools.combinations(range(len(limits)), distance):
                choices = [[v for v in range(limits[p]) if v != base[p]] for p in positions]
                for values in itertools.product(*choices):
                    combo = base.copy()
                    combo[list(positions)] = values
                    shell.append(combo)
            if shell:
                shells.append(self.index(np.array(shell)))
                count += len(shell)
            if count >= n:
                break
        return shells

    def label(self, combo) -> str:
        scaffold, *sites = (int(c) for c in combo)
        return SCAFFOLDS[scaffold][0] + " · " + ", ".join(SUBSTITUENTS[s][0] for s in sites)


_FP_GEN = rdFingerprintGenerator.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS)


def morgan(mol: Chem.Mol):
    """Morgan fingerprint, radius 2, 2,048 bits (an RDKit ``ExplicitBitVect``)."""
    return _FP_GEN.GetFingerprint(mol)


def descriptors(mol: Chem.Mol) -> np.ndarray:
    """The ``DESCRIPTORS`` of one molecule (RDKit's Crippen logP, TPSA, weight, counts)."""
    return np.array(
        [
            Crippen.MolLogP(mol),
            rdMolDescriptors.CalcTPSA(mol),
            Descriptors.MolWt(mol),
            Lipinski.NumHDonors(mol),
            Lipinski.NumHAcceptors(mol),
            rdMolDescriptors.CalcNumRotatableBonds(mol),
            rdMolDescriptors.CalcNumAromaticRings(mol),
            len(mol.GetSubstructMatches(_HALOGEN)),
        ],
        dtype=np.float64,
    )


class MoleculeCache:
    """Molecules of a ``FragmentSpace``, each built once when first asked for (by flat index).

    Holds canonical SMILES, the Morgan fingerprint (an RDKit bit vector, for Tanimoto) and its bits
    packed for the networks; the ``DESCRIPTORS`` are computed the first time they are asked for.
    ``check_distinct`` checks that no two built combinations give the same molecule.
    """

    def __init__(self, space: FragmentSpace) -> None:
        self.space = space
        self._row: dict[int, int] = {}
        self._smiles: list[str] = []
        self._fps: list = []
        self._bits = np.zeros((1024, FP_BITS // 8), dtype=np.uint8)
        self._desc = np.zeros((1024, len(DESCRIPTORS)))

    def __len__(self) -> int:
        return len(self._smiles)

    def _build(self, k: int) -> None:
        mol = self.space.mol(self.space.combos(k))
        n = len(self._smiles)
        if n == len(self._bits):
            self._bits = np.concatenate([self._bits, np.zeros_like(self._bits)])
            self._desc = np.concatenate([self._desc, np.zeros_like(self._desc)])
        fp = morgan(mol)
        array = np.zeros(FP_BITS, dtype=np.uint8)
        DataStructs.ConvertToNumpyArray(fp, array)
        self._bits[n] = np.packbits(array)
        self._desc[n] = np.nan  # descriptors are computed when first asked for (they cost more)
        self._smiles.append(Chem.MolToSmiles(mol))
        self._fps.append(fp)
        self._row[k] = n

    def rows(self, index, progress: bool = False) -> np.ndarray:
        """Row of each molecule of ``index`` in the cache, building the ones not built yet."""
        index = np.atleast_1d(np.asarray(index, dtype=np.int64))
        if len(index) and ((index < 0).any() or (index >= self.space.size).any()):
            raise ValueError(f"molecule indices must lie in [0, {self.space.size})")
        new = [k for k in dict.fromkeys(index.tolist()) if k not in self._row]
        for k in tqdm(new, desc="molecules", disable=not progress, mininterval=5):
            self._build(k)
        return np.array([self._row[k] for k in index.tolist()], dtype=np.int64)

    def smiles(self, i: int) -> str:
        return self._smiles[self.rows([i])[0]]

    def fingerprints(self, index) -> list:
        """RDKit fingerprints of molecules ``index``."""
        return [self._fps[r] for r in self.rows(index)]

    def descriptors(self, index) -> np.ndarray:
        rows = self.rows(index)  # first: building may grow the arrays
        index = np.atleast_1d(np.asarray(index, dtype=np.int64))
        for k, r in zip(index.tolist(), rows.tolist(), strict=True):
            if np.isnan(self._desc[r, 0]):
                self._desc[r] = descriptors(self.space.mol(self.space.combos(k)))
        return self._desc[rows]

    def fingerprint_tensor(self, index) -> torch.Tensor:
        """Fingerprint bits of molecules ``index`` as a float tensor ``[len, FP_BITS]``."""
        rows = self.rows(index)  # first: building may grow the arrays
        return torch.from_numpy(np.unpackbits(self._bits[rows], axis=-1)).float()

    def tanimoto(self, i: int, index) -> np.ndarray:
        """Tanimoto similarity of molecule ``i`` to molecules ``index``."""
        (fp,) = self.fingerprints([i])
        return np.array(DataStructs.BulkTanimotoSimilarity(fp, self.fingerprints(index)))

    def forget_after(self, n: int) -> None:
        """Drop every molecule built after the first ``n`` (to bound memory between runs)."""
        if n < len(self._smiles):
            for k in [k for k, r in self._row.items() if r >= n]:
                del self._row[k]
            del self._smiles[n:], self._fps[n:]

    def check_distinct(self) -> None:
        if len(set(self._smiles)) != len(self._smiles):
            raise ValueError("two combinations give the same molecule: a scaffold is symmetric")


def enumerate_space(space: FragmentSpace, progress: bool = False) -> MoleculeCache:
    """Build every molecule of a (small) space; fails if two combinations coincide."""
    cache = MoleculeCache(space)
    cache.rows(np.arange(space.size), progress)
    cache.check_distinct()
    return cache
