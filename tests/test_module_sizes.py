"""Module sizes (lines of source, the library's folders only; tests and benchmarks aside).

Targets: median at most 100 lines, 90th percentile at most 300, none over 500. The tree is
not there yet (see OVER_500 and the xfail below); until it is, no other module may pass 500
lines, and a module that shrinks below it must leave the list.
"""

from __future__ import annotations

import math
import statistics

import pytest

from tests.test_layers import MODULES, ROOT

MEDIAN_MAX, P90_MAX, LARGEST_MAX = 100, 300, 500

# The modules over 500 lines today, to be split. Only ever remove names from this set.
OVER_500 = {
    "alerting/detector.py",  # being changed on another branch; split after that lands
    "finsentry/settings.py",  # the settings table (one Field per setting, documented)
    "store/elasticsearch.py",
    "training/finetune.py",
    "models/registry.py",
}


def sizes() -> dict[str, int]:
    return {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines()) for path in MODULES.values()
    }


def percentile(values: list[int], share: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * share
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_no_module_joins_the_ones_over_500_lines():
    over = {path for path, lines in sizes().items() if lines > LARGEST_MAX}
    assert not over - OVER_500, f"over {LARGEST_MAX} lines: {sorted(over - OVER_500)}"
    assert not OVER_500 - over, f"no longer over {LARGEST_MAX} lines, take off OVER_500: {sorted(OVER_500 - over)}"


def test_percentile_is_the_usual_linear_one():
    assert percentile([1, 2, 3, 4, 5], 0.5) == 3
    assert percentile([10, 20], 0.9) == pytest.approx(19)


@pytest.mark.xfail(strict=True, reason="not met yet: median 114, 90th percentile 312, largest 710 lines (issue 18)")
def test_module_sizes_meet_the_targets():
    values = list(sizes().values())
    figures = (statistics.median(values), percentile(values, 0.9), max(values))
    assert figures[0] <= MEDIAN_MAX and figures[1] <= P90_MAX and figures[2] <= LARGEST_MAX, figures
