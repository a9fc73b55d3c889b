"""Lexer, parser and AST of the Faust language."""
