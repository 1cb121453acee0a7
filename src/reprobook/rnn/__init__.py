"""minGRU / minLSTM (Feng et al. 2024): cells, scans, models, tasks and the chapter's studies."""
