"""LLM inference playground for AI PCs: one prompt, several runtimes, side by side."""

__version__ = "0.1.0"
