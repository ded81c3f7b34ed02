"""Benchmarks that print tables; run as modules from the checkout: ``python -m bench.<name>``."""
