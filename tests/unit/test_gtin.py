import pytest
from biip.checksums import gs1_standard_check_digit
from biip.upc import Upc
from hypothesis import given
from hypothesis import strategies as st

from app.domain.gtin import catalogue_key, check_digit, expand_upce, is_valid_gtin, to_key

payloads = st.sampled_from([7, 11, 12, 13]).flatmap(
    lambda n: st.text("0123456789", min_size=n, max_size=n)
)


@given(payloads)
def test_check_digit_agrees_with_biip(payload):
    assert check_digit(payload) == gs1_standard_check_digit(payload)


@given(payloads)
def test_check_digit_round_trip(payload):
    code = payload + str(check_digit(payload))
    assert is_valid_gtin(code)
    wrong = payload + str((check_digit(payload) + 1) % 10)
    assert not is_valid_gtin(wrong)


@given(payloads, st.integers(0, 12), st.integers(1, 9))
def test_any_single_digit_error_is_caught(payload, position, delta):
    code = payload + str(check_digit(payload))
    position %= len(code)
    altered = code[:position] + str((int(code[position]) + delta) % 10) + code[position + 1 :]
    assert not is_valid_gtin(altered)


@given(st.text("0123456789", min_size=6, max_size=6), st.sampled_from("01"))
def test_upce_expansion_agrees_with_biip(body, ns):
    seven = ns + body
    from app.domain.gtin import upce_to_upca_payload

    upca = upce_to_upca_payload(seven)
    code = seven + str(check_digit(upca))
    assert expand_upce(code) == Upc.parse(code).as_upc_a()


def test_known_upce():
    assert expand_upce("04252614") == "042100005264"
    assert expand_upce("04252615") is None


def test_keys_meet_in_gtin14():
    assert to_key("96385074") == "00000096385074"
    assert catalogue_key("036000291452") == "00036000291452"
    assert catalogue_key("4011") == "PLU:4011"
    assert catalogue_key("94011") == "PLU:94011"


@pytest.mark.parametrize("bad", ["036000291453", "abc", "123456", "٣٦٠٠٠٢٩١٤٥٢", ""])
def test_catalogue_key_refuses(bad):
    with pytest.raises(ValueError):
        catalogue_key(bad)
