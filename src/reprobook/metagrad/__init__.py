"""Exact data attribution by metagradient, and Dataset Policy Gradient built on it (chapter 3)."""
