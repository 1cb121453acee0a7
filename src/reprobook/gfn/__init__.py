"""GFlowNets on torchgfn: the deceptive hyper-grid, teacher-student training, modes and L1."""

import warnings

# torchgfn imports tqdm.auto, which warns in notebooks without ipywidgets; our bars are plain text.
warnings.filterwarnings("ignore", message="IProgress not found")
