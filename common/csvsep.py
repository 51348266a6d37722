"""Name the separator of a CSV file that is not comma-separated.

Why: a results or answers file opened and saved again in a spreadsheet set to a
European locale comes back separated by semicolons (or tabs), and a comma-reading
parser then sees one long column: "column 'HITId' missing" sends the researcher to look
for a column that is right there. The readers call `foreign_separator` on the header
line when a column they need is missing, and say which separator they found instead.
"""
from __future__ import annotations

from collections.abc import Sequence

NAMES = {";": "semicolons (;)", "\t": "tabs", "|": "vertical bars (|)"}


def foreign_separator(header_line: str, expected: Sequence[str]) -> str | None:
    """The name of the separator `header_line` uses instead of commas (None: commas, or
    nothing recognisable). `expected`: column names the file should have."""
    line = header_line.lstrip("\ufeff").rstrip("\r\n")

    def cells(sep: str) -> list[str]:
        return [c.strip().strip('"').strip() for c in line.split(sep)]

    if any(name in cells(",") for name in expected):
        return None
    candidates: list[tuple[int, int, str]] = []
    for sep, name in NAMES.items():
        found = cells(sep)
        hits = sum(column in found for column in expected)
        if len(found) > 1 and (hits or "," not in line):
            candidates.append((hits, len(found), name))
    return max(candidates)[2] if candidates else None


def separator_message(path: object, header_line: str, expected: Sequence[str]) -> str | None:
    """One error line for a file separated by something else than commas, or None."""
    name = foreign_separator(header_line, expected)
    if name is None:
        return None
    return (f"{path}: the columns are separated by {name}, not commas; save it as a comma-separated "
            f"CSV (UTF-8) and run again")
