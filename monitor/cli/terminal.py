"""What the CLI prints to a person's terminal.

Much of it comes from elsewhere: a target's error text, a silence comment any API caller
wrote, a header value. A terminal obeys control characters in that text: ``ESC [2J`` clears
the screen, ``ESC ]0;…BEL`` sets the window title, C1 ``CSI`` (U+009B) does what ``ESC [``
does on many terminals, and bidirectional overrides make text read differently than it is.
So every command prints through :func:`echo`, which shows such characters as escapes
(``\\x1b``, ``\\u009b``) instead of sending them.
"""

from __future__ import annotations

import re
import sys
from typing import TextIO

# C0 controls except tab and newline, DEL, C1 controls; then the bidirectional formatting
# characters and the Unicode line/paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# In a single cell of a table, tab and newline break the layout as well.
_CELL_CONTROL = re.compile("[\t\n]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character written as an escape; tab and newline kept."""
    return _CONTROL.sub(_shown, text)


def cell(text: str) -> str:
    """One table cell: like :func:`printable`, and tab and newline escaped too."""
    return _CELL_CONTROL.sub(_shown, printable(text))


def echo(text: str = "", file: TextIO | None = None) -> None:
    """``print`` for anything that reaches a terminal."""
    print(printable(text), file=file if file is not None else sys.stdout)
