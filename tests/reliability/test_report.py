"""The reliability report itself: how lost and duplicated points are counted, and how the table reads.

The report printed at the end of the run (see conftest.py) is only as good as
`tally`, so it is checked here on cases whose answers are known by construction.
"""

from __future__ import annotations


def test_tally_of_a_perfect_copy(compare):
    expected = {("a", t): t * 0.5 for t in range(100)}
    assert compare(expected, list(expected.items())) == (100, 0, 0)


def test_tally_counts_missing_and_changed_points_as_lost(compare):
    expected = {("a", t): float(t) for t in range(10)}
    stored = [(key, value) for key, value in expected.items() if key[1] not in (3, 7)]  # two missing
    stored = [(key, value + 1 if key[1] == 5 else value) for key, value in stored]  # one changed
    assert compare(expected, stored) == (8, 3, 0)


def test_tally_counts_repeated_and_unexpected_points_as_duplicated(compare):
    expected = {("a", t): float(t) for t in range(10)}
    stored = list(expected.items()) + [(("a", 4), 4.0), (("a", 4), 4.0), (("b", 4), 4.0)]
    assert compare(expected, stored) == (13, 0, 3)


def test_report_table_shows_every_row_and_the_totals(report_renderer, report_row):
    rows = [
        report_row("scenario one", "SIGKILL", 1_000, 1_000, 0, 0, 0),
        report_row("scenario two", "503 503 (proxy)", 10, 7, 3, 0, 0),
    ]
    lines = report_renderer(rows)
    assert lines[0].split(" | ")[0].strip() == "scenario" and "lost" in lines[0] and "duplicated" in lines[0]
    assert set(lines[1]) <= {"-", "+"}
    cells = [cell.strip() for cell in lines[3].split(" | ")]
    assert cells == ["scenario two", "503 503 (proxy)", "10", "7", "3", "0", "0"]
    assert lines[-1] == (
        "total: 2 scenario(s), 1010 written, 1007 read back, 3 refused and reported, 0 lost, 0 duplicated"
    )


def test_report_rows_are_collected_for_the_session(reliability_report):
    from . import conftest

    before = len(conftest.REPORT)
    row = reliability_report(scenario="report self-check", faults="none", written=0, read_back=0, lost=0,
                             duplicated=0)
    try:
        assert conftest.REPORT[-1] is row and len(conftest.REPORT) == before + 1
    finally:
        conftest.REPORT.remove(row)  # not a real scenario: keep it out of the printed report
