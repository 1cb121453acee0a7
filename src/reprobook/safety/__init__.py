"""Safety: guardrails that bound the probability of harm (Bengio et al. 2024's exploding bandit)."""
