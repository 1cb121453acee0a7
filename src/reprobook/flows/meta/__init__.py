"""Chapter 8: Meta Flow Matching on letters and on a synthetic patients × treatments screen."""
