"""ch07's figures, drawn from the metrics (so committed artefacts re-plot)."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from rdkit import Chem
from rdkit.Chem.Draw import rdMolDraw2D

from reprobook.chem.space import SCAFFOLDS
from reprobook.gfn.morphology.report import rows
from reprobook.gfn.morphology.study import METHOD_LABELS, METHODS
from reprobook.plotting import colors


def plot_modes(metrics: dict) -> plt.Figure:
    """Modes found against molecules drawn (paper's rule), median over (seed, target) pairs with
    the 25-75 % band, as the paper's mode plots."""
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    for method, color in zip(METHODS, colors(len(METHODS)), strict=True):
        curves = [t["methods"][method]["curve"] for t in rows(metrics)]
        x = np.array(curves[0]["draws"])
        y = np.array([c["modes"] for c in curves], dtype=float)
        q25, q50, q75 = np.percentile(y, [25, 50, 75], axis=0)
        ax.plot(x, q50, color=color, label=METHOD_LABELS[method])
        ax.fill_between(x, q25, q75, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("molecules drawn")
    ax.set_ylabel("modes found")
    ax.legend(frameon=False, fontsize="small", loc="lower right")
    return fig


def plot_molecules(metrics: dict, seed_index: int = 0, target_index: int = 0, n: int = 4):
    """One target's molecule, then rows of proposals drawn by RDKit: the GFlowNet's top molecules
    by reward, its best molecules with Tanimoto < 0.3 to the target, and the similarity search's
    first molecules (under each: reward R, Tanimoto to the target, and whether the molecule truly
    acts through the target's cluster, "same", or another, "other")."""
    result = metrics["runs"][seed_index]["targets"][target_index]
    mols, legends = (
        [Chem.MolFromSmiles(result["smiles"])] + [Chem.Mol()] * (n - 1),
        [f"target (cluster {result['cluster']})"] + [""] * (n - 1),
    )
    rows = (("GFlowNet", "gfn", "top"), ("GFlowNet, sim < 0.3", "gfn", "dissimilar"),
            ("similar", "similarity", "top"))  # fmt: skip
    for name, method, which in rows:
        shown = result["methods"][method]["shown"][which][:n]
        for i in range(n):
            if i < len(shown):
                m = shown[i]
                mols.append(Chem.MolFromSmiles(m["smiles"]))
                same = "same" if m["same_cluster"] else "other"
                legends.append(
                    f"{name} #{i + 1}\nR {m['reward']:.3f}, sim {m['similarity']:.2f}, {same}"
                )
            else:
                mols.append(Chem.Mol())
                legends.append("")
    return _grid(mols, legends, n)


def plot_scaffolds(n_scaffolds: int = len(SCAFFOLDS)) -> plt.Figure:
    """The scaffolds of the space, attachment points numbered 1 to 4 (RDKit drawing)."""
    mols = [Chem.MolFromSmiles(smiles) for _, smiles in SCAFFOLDS[:n_scaffolds]]
    return _grid(mols, [n for n, _ in SCAFFOLDS[:n_scaffolds]], 4)


def _grid(mols: list, legends: list[str], per_row: int, size=(260, 230)) -> plt.Figure:
    """Molecules drawn by RDKit's Cairo drawer in a grid, shown as one matplotlib image."""
    n_rows = -(-len(mols) // per_row)
    drawer = rdMolDraw2D.MolDraw2DCairo(per_row * size[0], n_rows * size[1], *size)
    options = drawer.drawOptions()
    options.legendFontSize = 20
    options.legendFraction = 0.25
    drawer.DrawMolecules(mols, legends=legends)
    drawer.FinishDrawing()
    image = Image.open(io.BytesIO(drawer.GetDrawingText()))
    fig, ax = plt.subplots(figsize=(6.4, 6.4 * image.height / image.width))
    ax.imshow(np.asarray(image))
    ax.axis("off")
    return fig
