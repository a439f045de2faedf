"""Sample-quality metrics. Toy runs: mode coverage (toy.py)."""
