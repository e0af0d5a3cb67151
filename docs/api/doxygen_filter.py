#!/usr/bin/env python3
"""Doxygen's input filter for connpool's headers (docs/api/Doxyfile.in, FILTER_PATTERNS).

connpool's comments are plain // comments, written for the reader of the header: a block
on the lines above a declaration, or a comment after it on the same line. Doxygen reads
only ///, //! and /** */ as documentation, so this filter hands it the same text as such:

  - a block of // lines directly above a declaration becomes a /// block; a block that
    stands apart (a blank line, a preprocessor line or a closing brace follows it) stays
    a plain comment;
  - a // comment after a declaration on the same line (after ; , { or an inline body's })
    becomes ///<, Doxygen's "documents the member on its left".

It changes comments only, line for line, so that Doxygen's line numbers match the header.
A public name with no comment at all stays undocumented, and WARN_IF_UNDOCUMENTED reports
it: the filter does not document anything by itself.

usage: doxygen_filter.py HEADER   (writes the filtered header to stdout)
"""
import re
import sys

lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
lead = re.compile(r"^(\s*)//(?![/!])\s?(.*)$")
trail = re.compile(r"^(.*?[;,{}])(\s*)//(?![/!<])\s?(.*)$")


def code_part_is_plain(code):
    """True when the // after code is outside any string or character literal: the quotes
    before it are balanced."""
    return code.count('"') % 2 == 0 and code.count("'") % 2 == 0


out = []
i, n = 0, len(lines)
while i < n:
    if lead.match(lines[i]):
        j = i
        while j < n and lead.match(lines[j]):
            j += 1
        after = lines[j].strip() if j < n else ""
        documents = bool(after) and not after.startswith(("#", "}"))
        for k in range(i, j):
            m = lead.match(lines[k])
            out.append(f"{m.group(1)}/// {m.group(2)}" if documents else lines[k])
        i = j
        continue
    t = trail.match(lines[i])
    # A closing brace counts only as the end of an inline body ({ ... } on the same line):
    # "}  // namespace connpool" documents nothing.
    if t and code_part_is_plain(t.group(1)) and (not t.group(1).endswith("}") or "{" in t.group(1)):
        out.append(f"{t.group(1)}{t.group(2)}///< {t.group(3)}")
    else:
        out.append(lines[i])
    i += 1
sys.stdout.write("\n".join(out))
