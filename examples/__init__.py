"""Recipes from README.md, each a complete program (tested in tests/test_recipe*.py)."""
