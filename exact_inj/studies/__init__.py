"""Studies built on the decision engine: heuristic checkers and their
comparison with exact answers, constructions, stability bounds and the
Gaussian experiment."""
