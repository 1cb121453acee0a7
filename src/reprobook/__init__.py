"""reprobook: the shared library behind the book's chapters.

Core modules: ``chapters`` (finding chapter notebooks), ``profiles`` (profile name -> config),
``runtime`` (seeds, threads, device), ``results`` (atomic artefacts with provenance),
``anchors`` (paper numbers with their sources), ``plotting`` (one style), ``runner`` (papermill).
Topic packages (``safety``, ...) hold the science, split by topic rather than by chapter.
"""

__version__ = "0.1.0"
