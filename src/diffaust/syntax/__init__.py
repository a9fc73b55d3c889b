"""Lexer, parser and AST of the Faust language."""

from .lexer import tokenize
from .parser import parse, parse_expression, parse_file
from .printer import format_ast

__all__ = ["parse", "parse_file", "parse_expression", "format_ast", "tokenize"]
