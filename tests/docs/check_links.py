#!/usr/bin/env python3
"""Checks the links of README.md, CHANGELOG.md, bench/README.md and docs/*.md: a relative link must name a
file or directory that exists, and an #anchor a heading of the page it points to (GitHub's
rule for heading anchors). Links to other sites are not followed: the tests run offline.

It also checks every GIT_TAG the pages name (in text or in a block): release tags do not
reach every clone, so a page may name only the branch main or a full commit hash.

usage: check_links.py SOURCE_DIR
"""
import os
import re
import sys

root = sys.argv[1]
pages = ["README.md", "CHANGELOG.md", "bench/README.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(root, "docs")) if f.endswith(".md"))

link = re.compile(r"\]\(([^)\s]+)\)")
fence = re.compile(r"^(```|~~~)")


def text_outside_code(path):
    """The page's lines outside fenced blocks, with inline code spans removed."""
    lines, in_fence = [], False
    for line in open(path, encoding="utf-8"):
        if fence.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return lines


def heading_anchors(path):
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces become
    hyphens, a repeated heading gets -1, -2 ... Read from the raw lines: `code` in a heading
    keeps its text."""
    seen, out, in_fence = {}, set(), False
    for line in open(path, encoding="utf-8"):
        if fence.match(line):
            in_fence = not in_fence
            continue
        m = None if in_fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out



errors = []
for page in pages:
    path = os.path.join(root, page)
    if not os.path.exists(path):
        errors.append(f"{page}: missing")
        continue
    for line in text_outside_code(path):
        for target in link.findall(line):
            if re.match(r"^[a-z]+:", target):   # https:, mailto: ...
                continue
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if not os.path.exists(dest):
                errors.append(f"{page}: link to {target}: {os.path.relpath(dest, root)} does not exist")
                continue
            if anchor and dest.endswith(".md") and anchor not in heading_anchors(dest):
                errors.append(f"{page}: link to {target}: no heading #{anchor} in {os.path.relpath(dest, root)}")

git_tag = re.compile(r"GIT_TAG\s+([^\s)`]+)")
for page in pages:
    path = os.path.join(root, page)
    if not os.path.exists(path):
        continue
    for number, line in enumerate(open(path, encoding="utf-8"), 1):
        for ref in git_tag.findall(line):
            if ref != "main" and not re.fullmatch(r"[0-9a-f]{40}", ref) and not ref.startswith("<"):
                errors.append(f"{page}:{number}: GIT_TAG {ref}: name main or a full commit hash, not a tag")

for e in errors:
    print(e)
sys.exit(1 if errors else 0)
