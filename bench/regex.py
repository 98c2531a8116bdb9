"""User-supplied regexes: Python's ``re`` (what the daemon used before) vs RE2 (what it uses now).

Two measurements:

- a silence matcher ``'.*' * 40 + 'X'`` against label values of growing length. Before: the
  old code (the commit before monitor/regex_guard.py was deleted, extracted with
  ``git archive``), whose guard accepted this pattern and ran it on Python's ``re``: each
  length runs in its own subprocess under ``timeout``, since a long enough value never
  finishes. After: this tree's ``Matcher`` (RE2), in µs per match.
- µs per match of ordinary matcher patterns, Python ``re`` (the reference) vs ``re2`` and
  our wrapper ``monitor.core.regex.Regex`` (what ``Matcher.matches`` calls), with ``timeit``.

    python -m bench.regex [--before REV] [--timeout 10] [--no-write]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import timeit
from collections.abc import Callable
from importlib.metadata import version
from io import BytesIO
from pathlib import Path

import re2

from bench._common import BENCH_DIR, command_line, machine_info, md_table, update_results_section
from monitor.alerting.matchers import Matcher
from monitor.core.regex import compile_regex

REPO = BENCH_DIR.parent
FORTY_STARS = ".*" * 40 + "X"
LENGTHS = (4, 5, 6, 7, 8, 10, 20, 300)  # characters of the label value
ORDINARY = [("api|web", "web", "worker"), ("prod-.*", "prod-eu-1", "staging-eu-1"), ("5..", "503", "200")]

# Run by the old code in a subprocess: one match, its duration in seconds on stdout.
_BEFORE = """
import sys, time
from monitor.alerting.matchers import Matcher
matcher = Matcher("check", "=~", sys.argv[1])
value = "a" * int(sys.argv[2])
started = time.perf_counter()
found = matcher.matches({"check": value})
print(time.perf_counter() - started, found)
"""


def default_before() -> str:
    """The last commit that still had the backtracking guard (and so Python's re)."""
    out = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%H", "--diff-filter=D", "--",
                          "monitor/regex_guard.py"], capture_output=True, text=True, check=True)
    deleted_in = out.stdout.strip()
    if not deleted_in:
        raise SystemExit("monitor/regex_guard.py was never deleted here: pass --before REV")
    return f"{deleted_in}^"


def extract(rev: str, into: Path) -> str:
    """The ``monitor`` package as of ``rev`` under ``into``; returns the short commit id."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "monitor"], capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev],
                          capture_output=True, text=True, check=True).stdout.strip()


def before_seconds(tree: Path, length: int, timeout: float) -> float | None:
    """One match by the old code; None when ``timeout`` killed it."""
    argv = ["timeout", str(timeout), sys.executable, "-c", _BEFORE, FORTY_STARS, str(length)]
    # The old tree first on the path, so `import monitor` is the old code, not this checkout.
    run = subprocess.run(argv, capture_output=True, text=True, cwd=tree, env={"PYTHONPATH": str(tree)})
    if run.returncode == 124:
        return None
    if run.returncode != 0:
        raise RuntimeError(f"old code failed for length {length}:\n{run.stderr}")
    return float(run.stdout.split()[0])


def per_call_us(fn: Callable[[], object], number: int) -> float:
    """Median over 5 rounds of the mean µs per call (median damps a noisy neighbour)."""
    return statistics.median(t / number * 1e6 for t in timeit.repeat(fn, repeat=5, number=number))


def after_us(length: int) -> float:
    matcher = Matcher("check", "=~", FORTY_STARS)
    labels = {"check": "a" * length}
    verdicts = matcher._regex._verdicts  # type: ignore[union-attr]  # emptied: every call really matches

    def cold() -> object:
        verdicts.clear()
        return matcher.matches(labels)

    return per_call_us(cold, number=max(10, 200_000 // max(length, 1_000)))


def pathological(rev: str, timeout: float) -> tuple[list[list[str]], str]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        commit = extract(rev, Path(tmp))
        timed_out = False
        for length in LENGTHS:
            # Longer values only take longer; one kill is enough, except the "few hundred
            # characters" case, which is run anyway to show it does not finish either.
            seconds = None if timed_out and length != LENGTHS[-1] else before_seconds(Path(tmp), length, timeout)
            skipped = timed_out and length != LENGTHS[-1]
            timed_out = timed_out or seconds is None
            before = ("not run (a shorter value already timed out)" if skipped
                      else f"> {timeout:g} s (killed by timeout)" if seconds is None else f"{seconds * 1e6:,.0f}")
            rows.append([f"{length:,}", before, f"{after_us(length):.2f}"])
    rows.append(["100,000", "not run", f"{after_us(100_000):.2f}"])
    return rows, commit


def ordinary() -> list[list[str]]:
    rows = []
    for pattern, hit, miss in ORDINARY:
        python_re, raw_re2, ours = re.compile(pattern), re2.compile(pattern), compile_regex(pattern)
        for value in (hit, miss):
            reference = per_call_us(lambda: python_re.fullmatch(value), number=200_000)
            raw = per_call_us(lambda: raw_re2.fullmatch(value), number=200_000)
            wrapped = per_call_us(lambda: ours.fullmatch(value), number=200_000)  # seen before: remembered

            def cold() -> bool:
                ours._verdicts.clear()
                return ours.fullmatch(value)

            missed = per_call_us(cold, number=200_000)
            answer = "match" if python_re.fullmatch(value) else "no match"
            assert (raw_re2.fullmatch(value) is not None) == ours.fullmatch(value) == (answer == "match")
            cell = f"`{pattern}` vs `{value}` ({answer})".replace("|", "\\|")  # a bare | would split the cell
            rows.append([cell, f"{reference:.2f}", f"{raw:.2f} ({raw / reference:.1f}×)",
                         f"{missed:.2f} ({missed / reference:.1f}×)", f"{wrapped:.2f} ({wrapped / reference:.1f}×)"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--before", help="git revision of the old code (default: the commit before the guard was deleted)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds one old-code match may take")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    rev = args.before or default_before()
    slow_rows, commit = pathological(rev, args.timeout)
    fast_rows = ordinary()
    body = "\n".join([
        "## User-supplied regexes: Python `re` vs RE2 (`bench/regex.py`)", "",
        f"Command: `{command_line()}`", "",
        *machine_info(),
        f"- versions: google-re2 {version('google-re2')}; before = commit {commit} (Python `re` behind"
        " monitor/regex_guard.py), run as `timeout` subprocesses; after = this tree", "",
        f"A silence matcher `check=~'.*' * 40 + 'X'` (accepted by the old guard) against a label value of"
        f" N `a`s (no match). Before: one match, µs, each in its own process killed after {args.timeout:g} s;"
        " after: RE2, µs per match (median of 5 rounds).", "",
        md_table(["label value length", "before: Python re, µs", "after: RE2, µs"], slow_rows), "",
        "Ordinary matcher patterns, anchored as in Alertmanager (`fullmatch`), µs per match, median of 5"
        " rounds of 200,000 calls; reference = Python `re` in the same run.", "",
        md_table(["pattern vs value", "Python re (reference)", "re2", "monitor.core.regex, new value",
                  "monitor.core.regex, value seen before (remembered verdict)"], fast_rows),
    ])
    print(body)
    if not args.no_write:
        update_results_section("regex", body)


if __name__ == "__main__":
    main()
