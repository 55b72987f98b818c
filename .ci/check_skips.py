"""Fail CI when a test skips that the committed allow-list does not name.

Reads pytest's JUnit XML report and compares every skipped test with
``.ci/skip_allowlist.txt``: one ``glob-of-test-id  # why`` per line, matched with
:func:`fnmatch.fnmatch` against ``<file>::<test>`` (``classname`` dots turned into the
file path). A skip that matches no line, or more skips than the allow-list has lines
times their matches allow, fails the run, so a broken import or a vanished fixture can
no longer pass as a skip.

Usage::

    python .ci/check_skips.py report.xml .ci/skip_allowlist.txt
"""

from __future__ import annotations

import fnmatch
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def skipped_tests(report: Path) -> list[tuple[str, str]]:
    """``(test id, reason)`` of every skipped test in a JUnit XML report."""
    out = []
    for case in ET.parse(report).getroot().iter("testcase"):
        skip = case.find("skipped")
        if skip is None:
            continue
        cls = case.get("classname", "")
        name = case.get("name", "")
        if not cls:
            # a module skipped at collection: pytest puts the module path in "name"
            test_id = name.replace(".", "/") + ".py::*"
        else:
            # pytest writes "tests.io.test_x" or "tests.io.test_x.TestClass"
            parts = cls.split(".")
            module = next(
                (
                    i
                    for i in range(len(parts), 0, -1)
                    if Path(*parts[:i]).with_suffix(".py").is_file()
                ),
                len(parts),
            )
            test_id = "/".join(parts[:module]) + ".py::" + "::".join([*parts[module:], name])
        out.append((test_id, skip.get("message", "")))
    return out


def allowed_patterns(path: Path) -> list[str]:
    """Glob patterns of the allow-list (comments and blank lines dropped)."""
    pats = []
    for line in path.read_text(encoding="utf-8").splitlines():
        pat = line.split("#", 1)[0].strip()
        if pat:
            pats.append(pat)
    return pats


def main(argv: list[str]) -> int:
    report, allowlist = Path(argv[1]), Path(argv[2])
    skips = skipped_tests(report)
    patterns = allowed_patterns(allowlist)
    unexpected = [(t, r) for t, r in skips if not any(fnmatch.fnmatch(t, p) for p in patterns)]
    print(f"{len(skips)} skipped test(s); {len(patterns)} allow-listed pattern(s).")
    for t, r in skips:
        print(f"  skipped: {t}: {r}")
    if unexpected:
        print(f"FAIL: {len(unexpected)} skip(s) not in {allowlist}:")
        for t, r in unexpected:
            print(f"  {t}: {r}")
        print("Fix the cause, or allow-list the test with the reason it may skip.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
