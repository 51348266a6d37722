"""Attribute words and composed names read like a person wrote them."""
import pytest

from core.naming.vocabulary import compose, term


@pytest.mark.parametrize("attribute, words", [
    ("has_wing_color::yellow", "yellow wing"),
    ("has_wing_pattern::striped", "striped wing pattern"),
    ("has_bill_shape::needle", "needle-shaped bill"),
    ("has_bill_shape::curved_(up_or_down)", "curved bill"),
    ("has_tail_shape::notched_tail", "notched tail"),
    ("has_head_pattern::eyebrow", "eyebrow stripe"),
    ("has_size::small_(5_-_9_in)", "small bird"),
    ("has_leg_color::grey", "grey legs"),
    ("has_bill_length::longer_than_head", "long bill"),
    ("has_crest_color::red", "red crest"),       # unknown group: its own words
])
def test_single_attribute_words(attribute, words):
    assert term(attribute).words == words


@pytest.mark.parametrize("attributes, name", [
    (["has_tail_shape::notched_tail", "has_upper_tail_color::black"], "notched black tail"),
    (["has_upper_tail_color::black", "has_tail_shape::notched_tail"], "notched black tail"),
    (["has_wing_color::red", "has_wing_pattern::solid"], "plain red wing"),
    (["has_breast_color::yellow", "has_underparts_color::yellow"], "yellow breast and underparts"),
    (["has_breast_color::yellow", "has_underparts_color::white"], "yellow breast and white underparts"),
    (["has_head_pattern::eyering", "has_crown_color::black"], "eye ring and black crown"),
    (["has_wing_pattern::striped"], "striped wing pattern"),
    ([], ""),
])
def test_composed_names(attributes, name):
    assert compose([term(a) for a in attributes]) == name
