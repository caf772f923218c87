"""The fenced blocks of README.md and docs/**/*.md, and the examples among
them: a block of code followed (blank lines aside) by a ```text block, its
output. tests/python/test_doc_examples.py runs the ```sql examples in the
sqlite3 shell, tests/postgres/test_pg_doc_examples.py the ```psql ones in psql,
tests/clients/test_doc_snippets.py the other languages'."""

import difflib
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(ROOT, "docs")
FENCE = re.compile(r"^```(\S*)\s*$")
# A timestamp as the functions print it; the docs write TIME for it.
TIMESTAMP = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\b")


def markdown_files():
    found = [os.path.join(ROOT, "README.md")]
    for folder, _, names in os.walk(DOCS):
        found.extend(os.path.join(folder, n) for n in names if n.endswith(".md"))
    return sorted(found)


def fenced_blocks(path):
    """(language, line of the opening fence, body, index of the opening fence,
    index of the closing fence) of each fenced block, and the file's lines."""
    blocks = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i] + "\n")
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path}:{start + 1}: fenced block is never closed")
        blocks.append((m.group(1), start + 1, "".join(body), start, i))
        i += 1
    return blocks, lines


def examples(language):
    """(name, code, expected output) of every ```language block followed by a
    ```text block, named by file and line; and the names of the ```language
    blocks that have no output block after them."""
    found, lonely = [], []
    for path in markdown_files():
        rel = os.path.relpath(path, ROOT)
        blocks, lines = fenced_blocks(path)
        for k, (lang, line, body, _, end) in enumerate(blocks):
            if lang != language:
                continue
            nxt = blocks[k + 1] if k + 1 < len(blocks) else None
            if (nxt is not None and nxt[0] == "text"
                    and all(not l.strip() for l in lines[end + 1:nxt[3]])):
                found.append((f"{rel}:{line}", body, nxt[2]))
            else:
                lonely.append(f"{rel}:{line}")
    return found, lonely


def difference(name, expected, actual, tool):
    """None when actual is expected; else the message that says how the
    example's output (from tool) differs from the docs."""
    if actual == expected:
        return None
    diff = "".join(difflib.unified_diff(
        expected.splitlines(keepends=True), actual.splitlines(keepends=True),
        fromfile=f"{name} (docs)", tofile=f"{name} ({tool})"))
    return f"{name}: the example's output differs from the docs:\n{diff}"
