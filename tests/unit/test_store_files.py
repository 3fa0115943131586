"""The promotions and lane-keys files' rules in the domain (app/domain/promotions_file.py,
app/domain/lane_keys.py): one rule for the lane's imports and head office's publishing."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.domain.lane_keys import parse_lane_keys
from app.domain.promotions_file import parse_promotions
from app.services.catalogue import load_promotions_file
from app.services.exit_pass import KeyFileError, load_public_keys

RAW = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
TEXT = base64.b64encode(RAW).decode()


def test_lane_keys_as_lines_or_a_lanes_table():
    assert parse_lane_keys(f'lane-01 = "{TEXT}"\n') == {"lane-01": RAW}
    assert parse_lane_keys(f'[lanes]\nlane-02 = "{TEXT}"\n') == {"lane-02": RAW}
    assert parse_lane_keys("") == {}


@pytest.mark.parametrize(("text", "says"), [
    ('lane-01 = "not base64!"', "the key for 'lane-01' is not a base64 Ed25519"),
    (f'lane-01 = "{base64.b64encode(RAW[:31]).decode()}"', "'lane-01' is not a base64"),
    ("lane-01 = 42", "'lane-01' is not a base64"),
    ("lanes = 3", "'lanes' must be a table"),
    ("lane-01 = ", "not valid TOML"),
])
def test_bad_lane_keys_are_refused_alike_by_both_readers(tmp_path, text, says):
    with pytest.raises(ValueError, match=says):
        parse_lane_keys(text)
    path = tmp_path / "keys.toml"
    path.write_text(text + "\n")
    with pytest.raises(KeyFileError, match=says):  # the exit check: the same rule
        load_public_keys(path)


def test_promotions_rule_is_the_import_rule(tmp_path):
    good = ('[[promotion]]\npromo_id = "A"\nkind = "multi_buy"\nname_zh = "甲"\n'
            'name_en = "A"\nproducts = ["6900000000083"]\nbuy = 3\npay = 2\n')
    assert [p.promo_id for p in parse_promotions(good, "CNY")] == ["A"]
    path = tmp_path / "p.toml"
    for text, says in ((good + good, "duplicate promo_id A"), ("promotion = 1", "expected"),
                       ("[[promotion", "not valid TOML")):
        with pytest.raises(ValueError, match=says):
            parse_promotions(text, "CNY")
        path.write_text(text)
        with pytest.raises(ValueError, match=f"{path}: .*{says}"):
            load_promotions_file(path, "CNY")
