"""The package's version: the one place it is written (``pyproject.toml`` reads it, as do
``embeddedserver.__version__`` and ``python -m embeddedserver --version``)."""

__all__ = ["__version__"]

__version__ = "0.2.0.dev0"
