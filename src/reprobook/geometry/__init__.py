"""Geometry of representations: intrinsic and linear dimension estimators (ch02)."""
