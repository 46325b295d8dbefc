"""Scenes: ScanNet I/O, geometry, superpoints, rendering, and the synthetic scene generator."""
