"""Chapter 9: the AI virtual cell: a representation, a decoder and a perturbation benchmark."""
