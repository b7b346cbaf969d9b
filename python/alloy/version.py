"""The version of Alloy (kept equal to pyproject.toml's), which cache keys carry."""

__version__ = "0.1.0"
