"""Geometric signatures of compositionality across a language model's lifetime (ch02)."""
