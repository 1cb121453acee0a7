"""Programmatic math micro-skills, the MATH² question pipeline, and small trained solvers (ch04)."""
