"""River-style online detectors: the catalog, the per-key registry and the detector contract."""
