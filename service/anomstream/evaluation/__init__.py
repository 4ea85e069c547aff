"""Offline evaluation of detectors: the NAB scorer and standard point metrics."""
