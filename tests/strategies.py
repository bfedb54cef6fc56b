"""Hypothesis strategies for hostile values, shared by the line-protocol, round-trip and C-encoder tests."""

from hypothesis import strategies as st

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: Characters line protocol or InfluxQL treat specially, and some far from ASCII.
SPECIALS = list(' ,="\\={}\t\r\x00é€😀')

#: Tag values: no newline, no trailing backslash (both refused by design), never empty.
tag_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(SPECIALS), st.characters(blacklist_categories=("Cs",), blacklist_characters="\n")
    ),
    min_size=1,
    max_size=12,
).map(lambda s: s + "x" if s.endswith("\\") else s)


def field_texts(max_size: int = 24) -> st.SearchStrategy[str]:
    """String field values: anything but lone surrogates, newlines included."""
    return st.text(
        alphabet=st.one_of(st.sampled_from([*SPECIALS, "\n"]), st.characters(blacklist_categories=("Cs",))),
        max_size=max_size,
    )


#: Finite floats, with the subnormal, extreme and signed-zero values named.
EDGE_FLOATS = [5e-324, -5e-324, 2.2250738585072014e-308, 1e308, -1e308, 1.7976931348623157e308, -0.0]
finite_floats = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(EDGE_FLOATS))

int64s = st.one_of(st.integers(INT64_MIN, INT64_MAX), st.sampled_from([INT64_MIN, INT64_MAX, 0, -1]))
