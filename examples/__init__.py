"""Recipes from docs/guides/ (web.md, workers.md), each a complete program
(tested in tests/test_recipe*.py)."""
