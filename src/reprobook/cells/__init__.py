"""Cells: a gene-regulatory-network simulator of perturbation screens, perturbation-response models
and their benchmark metrics, and cell-state representations with scanpy/anndata (ch09)."""
