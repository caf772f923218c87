"""A guide's code is its program's: every ```python block of a guide that is
not followed by a ```text block (that one is an example of its own, run by
tests/clients/test_doc_snippets.py) appears in the program word for word.
Shared by the tests of docs/integration.md and docs/adopting.md."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check_excerpts(test, guide, program, at_least):
    with open(os.path.join(ROOT, program), encoding="utf-8") as f:
        code = f.read()
    with open(os.path.join(ROOT, guide), encoding="utf-8") as f:
        excerpts = [block for block, example in
                    re.findall(r"^```python\n(.*?)^```\n(\s*```text)?", f.read(), re.M | re.S)
                    if not example]
    test.assertGreaterEqual(len(excerpts), at_least, f"too few ```python excerpts in {guide}")
    for excerpt in excerpts:
        with test.subTest(excerpt=excerpt.splitlines()[0]):
            test.assertIn(excerpt, code, f"{guide} shows code that {program} does not have, word for word")
