"""Small molecules with RDKit: an enumerable fragment space, a synthetic "biology" over it, a
structure-profile contrastive model, an independent oracle and structure metrics (Tanimoto)."""

from rdkit import RDLogger

RDLogger.DisableLog("rdApp.*")  # molzip and sanitisation log every hydrogen they strip
