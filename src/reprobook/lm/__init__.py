"""Small causal language models, synthetic corpora and sampling, shared by the LM chapters."""
