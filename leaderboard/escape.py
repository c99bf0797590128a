"""Text from strangers, made safe for each place it is shown: one function per output format.

Everything a submitter writes (card fields, author names, file names in messages) passes through
`printable_line` when it is read, so it is one line of printable characters: no control characters,
no ANSI escape sequences, no carriage returns that would add table rows, bounded in length. On the
way out it is escaped for where it lands: `markdown` for leaderboard/README.md, `html` for
index.html. Nothing else writes submitter text into those files.
"""

from __future__ import annotations

import html as _html
import re
import unicodedata

ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
"""ANSI escape sequences (CSI, OSC and two-character escapes)."""
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~<>&])")
"""What Markdown or HTML interprets inside a table cell: emphasis, code, links and images (no link
without brackets), tags and entities, cell borders. A cell never starts a line, so # + - . do not."""


def printable_line(text: object, limit: int = 400) -> str:
    """`text` as one line of printable characters: ANSI sequences and other control or format
    characters removed, runs of whitespace (newlines included) collapsed to one space, and cut
    to `limit` characters with '...'."""
    text = ANSI.sub("", str(text))
    text = "".join(" " if ch.isspace() else ch for ch in text
                   if ch.isspace() or unicodedata.category(ch)[0] not in ("C",))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def markdown(text: object) -> str:
    """`text` as literal Markdown inline text (a table cell): one printable line in which every
    character Markdown or HTML would interpret there is backslash-escaped, so no link, image, tag,
    comment or table column can be made of it."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", printable_line(text))


def html(text: object) -> str:
    """`text` as HTML text or attribute content: one printable line with & < > " ' escaped."""
    return _html.escape(printable_line(text), quote=True)
