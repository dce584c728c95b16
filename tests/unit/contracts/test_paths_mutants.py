"""Path-template cases written to kill mutants that survived the rest of the suite (scripts/mutants)."""

import pytest

from egress.contracts.paths import PathTable, TemplateError

UNBALANCED = ["/a/{id", "/a/id}", "/a/{id}}", "/a/{{id}", "/a/x{id}y}", "/a/{id}.json{"]


@pytest.mark.parametrize("template", UNBALANCED, ids=UNBALANCED)
def test_unbalanced_braces_are_refused(template):
    with pytest.raises(TemplateError, match="unbalanced braces"):
        PathTable().add(template, 1)


def test_mixed_segments_of_one_shape_share_a_node():
    table = PathTable()
    table.add("/files/{a}.json/meta", "meta")
    table.add("/files/{b}.json/data", "data")     # same shape {}.json: one node, two children
    assert (table.match("/files/x.json/meta"), table.match("/files/x.json/data")) == ("meta", "data")
    with pytest.raises(TemplateError, match="duplicate"):
        table.add("/files/{c}.json/meta", "again")


@pytest.mark.parametrize("order", ["short-first", "long-first"])
def test_longest_mixed_literal_wins_whatever_the_order_added(order):
    table = PathTable()
    pairs = [("/f/{n}.gz", "gz"), ("/f/{n}.tar.gz", "tgz")]
    for template, value in (pairs if order == "short-first" else pairs[::-1]):
        table.add(template, value)
    assert (table.match("/f/a.tar.gz"), table.match("/f/a.gz")) == ("tgz", "gz")


def test_a_mixed_parameter_matches_any_decoded_character():
    table = PathTable()
    table.add("/f/{name}.json", 1)
    assert table.match("/f/a%0Ab.json") == 1          # a newline, percent-encoded, is still a character
    assert table.match("/f/.json") is None            # but the parameter is never empty


def test_more_literal_text_wins_over_more_parameters():
    table = PathTable()
    table.add("/f/{a}-{b}.gz", "two-params")
    table.add("/f/{n}.tar.gz", "tgz")          # 7 literal characters beat 4, however many parameters
    assert table.match("/f/x-y.tar.gz") == "tgz"
    assert table.match("/f/x-y.gz") == "two-params"
