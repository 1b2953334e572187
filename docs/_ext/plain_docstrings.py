"""A griffe extension for the API reference: janus-jax's docstrings are plain
text (shapes such as ``[z, h] [..., Z + H]``, ``[*B, ...]``), not Markdown, so
square brackets and asterisks outside ``literals`` are escaped before
mkdocstrings renders them. Unescaped, Markdown reads ``[a] [b]`` as a reference
link (an unresolved cross-reference fails ``mkdocs build --strict``) and
``*B ... *B`` as emphasis."""

from __future__ import annotations

import re

import griffe

# ``double`` or `single` backtick literals stay as written.
_LITERAL = re.compile(r"(``.+?``|`[^`\n]+`)", re.DOTALL)
_SPECIAL = re.compile(r"([\[\]*])")


def escape(text: str) -> str:
    """Returns ``text`` with ``[``, ``]`` and ``*`` backslash-escaped outside
    backtick literals."""
    parts = _LITERAL.split(text)
    # split() with one group alternates text and literal: odd indices are literals.
    return "".join(
        part if i % 2 else _SPECIAL.sub(r"\\\1", part) for i, part in enumerate(parts)
    )


class PlainDocstrings(griffe.Extension):
    """Escapes every loaded object's docstring (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = escape(obj.docstring.value)
