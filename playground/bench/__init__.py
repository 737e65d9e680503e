"""Headless benchmarks on the same engine as the web page (``python -m playground.bench``)."""
