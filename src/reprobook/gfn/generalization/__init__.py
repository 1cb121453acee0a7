"""On generalization for generative flow networks: the gfn.generalization topic package."""
