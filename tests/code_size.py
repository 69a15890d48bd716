"""How big an example is: lines holding code (not blank, not comments, not docstrings)."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not comments, not docstrings."""
    source = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            docstrings.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    skipped = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    lines = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type not in skipped}
    return len(lines - docstrings)
