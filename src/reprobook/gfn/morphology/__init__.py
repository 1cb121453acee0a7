"""Cell morphology-guided molecule generation with GFlowNets: the gfn.morphology topic package."""
