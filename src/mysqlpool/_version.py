"""The package's version: the one place it is written.

pyproject.toml reads it (``[tool.setuptools.dynamic]``), ``mysqlpool.__version__``
re-exports it and ``python -m mysqlpool --version`` prints it; CHANGELOG.md's
newest release heading must match it (tests/test_packaging.py).
"""

__version__ = "0.1.0"
