"""Zero-shot object-centric representation learning: the vision.objects topic package."""
