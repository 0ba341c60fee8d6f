"""Reports, plots and the W&B dashboard built from a sweep's runs."""
