"""Box algebra and the evaluator (AST -> box)."""
