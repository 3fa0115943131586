from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.barcodes import CodeKind, ScannedCode
from app.domain.cart import Cart, CartLine
from app.domain.catalogue import ScannedItem, Unit
from app.domain.pricing import price_cart
from app.domain.promotions import PromoKind, Promotion, promotion_from_dict
from app.domain.tax import TaxMode, TaxPolicy
from tests.unit.factories import TAX, cny, product

YOGURT = [product(i, 450, dept="dairy") for i in (1, 2, 3)]
TEA = [product(i, 400, dept="drinks") for i in (4, 5)]
BREAD = product(6, 1250, dept="bakery", tax_class="food")
CHIPS = product(7, 850, dept="snacks", member=790)
STEAK = product(8, 8900, dept="meat", unit=Unit.KG, member=7900)

PROMOS = [
    Promotion(
        "Y3F2",
        PromoKind.MULTI_BUY,
        "酸奶买3付2",
        "Yogurt 3 for 2",
        products=frozenset(p.code for p in YOGURT),
        buy=3,
        pay=2,
    ),
    Promotion(
        "TEA2",
        PromoKind.N_FOR_X,
        "茶2瓶7元",
        "Tea 2 for 7",
        products=frozenset(p.code for p in TEA),
        buy=2,
        price=cny(700),
    ),
    Promotion(
        "BAKERY",
        PromoKind.PERCENT_OFF,
        "烘焙8折",
        "Bakery 20% off",
        departments=frozenset({"bakery"}),
        percent=20,
    ),
    Promotion(
        "CHIPS1",
        PromoKind.AMOUNT_OFF,
        "薯片减1元",
        "Chips 1 off",
        products=frozenset({CHIPS.code}),
        amount=cny(100),
    ),
    Promotion(
        "S100",
        PromoKind.SPEND_THRESHOLD,
        "满100减10",
        "Spend 100 save 10",
        threshold=cny(10000),
        amount=cny(1000),
        repeat=True,
        priority=200,
    ),
]


def cart_of(*entries):
    cart = Cart()
    for entry in entries:
        p, n = entry if isinstance(entry, tuple) else (entry, 1)
        weight = n if p.unit is Unit.KG else None
        qty = 1 if p.unit is Unit.KG else n
        cart.add(ScannedItem(p, ScannedCode(CodeKind.GTIN, (p.code,)), qty, weight))
    return cart


def price(cart, promos=PROMOS, member=False, tax=TAX):
    return price_cart(cart.lines, promos, member=member, tax=tax, currency="CNY")


def savings(priced):
    return {code: m.minor for code, m in priced.savings_by_code().items()}


def test_multi_buy_cheapest_of_each_group_is_free():
    cheap = product(9, 300, dept="dairy")
    promo = Promotion(
        "M",
        PromoKind.MULTI_BUY,
        "买3付2",
        "3 for 2",
        products=frozenset({YOGURT[0].code, cheap.code}),
        buy=3,
        pay=2,
    )
    priced = price(cart_of((YOGURT[0], 2), (cheap, 2)), [promo])
    assert savings(priced) == {"M": 300}  # group: 450, 450, 300 -> the 300 is free
    assert priced.total.minor == 450 * 2 + 300 * 2 - 300


def test_mix_and_match_multi_buy_across_products():
    priced = price(cart_of(YOGURT[0], YOGURT[1], YOGURT[2]), PROMOS[:1])
    assert priced.total.minor == 900
    assert savings(priced) == {"Y3F2": 450}


def test_n_for_x_explained_on_each_line():
    priced = price(cart_of(TEA[0], TEA[1]), PROMOS[1:2])
    assert priced.total.minor == 700
    per_line = [sum(a.saving.minor for a in line.adjustments) for line in priced.lines]
    assert per_line == [50, 50]


def test_n_for_x_never_raises_a_price():
    cheap = Promotion(
        "X", PromoKind.N_FOR_X, "", "", products=frozenset({TEA[0].code}), buy=2, price=cny(900)
    )
    assert price(cart_of((TEA[0], 2)), [cheap]).total.minor == 800


def test_percent_and_amount_off():
    priced = price(cart_of(BREAD, (CHIPS, 2)), PROMOS[2:4])
    assert savings(priced) == {"BAKERY": 250, "CHIPS1": 200}


def test_member_price_and_member_only_promotion():
    member_promo = Promotion(
        "MEAT10",
        PromoKind.PERCENT_OFF,
        "会员鲜肉9折",
        "Meat 10%",
        departments=frozenset({"meat"}),
        percent=10,
        member_only=True,
    )
    cart = cart_of((STEAK, 500), CHIPS)
    guest = price(cart, [member_promo])
    assert guest.total.minor == 4450 + 850
    member = price(cart, [member_promo], member=True)
    # steak: 79.00/kg * 0.5 = 39.50, 10% off = 3.95; chips member price 7.90
    assert savings(member) == {"member_price": 500 + 60, "MEAT10": 395}
    assert member.total.minor == 3950 - 395 + 790


def test_spend_threshold_repeats_and_is_spread_over_lines():
    big = product(10, 6000)
    priced = price(cart_of((big, 4)), PROMOS[4:])
    assert savings(priced) == {"S100": 2000}
    assert priced.total.minor == 24000 - 2000


def test_threshold_counts_spend_after_item_promotions():
    # 3 yogurts = 13.50 regular, 9.00 after 3-for-2: below a 10.00 threshold
    promo = Promotion(
        "T10", PromoKind.SPEND_THRESHOLD, "", "", threshold=cny(1000), amount=cny(100), priority=200
    )
    priced = price(cart_of(*YOGURT), [PROMOS[0], promo])
    assert "T10" not in savings(priced)


def test_each_unit_gets_at_most_one_item_promotion_lowest_priority_first():
    amount = Promotion(
        "B2",
        PromoKind.AMOUNT_OFF,
        "",
        "",
        departments=frozenset({"bakery"}),
        amount=cny(100),
        priority=50,
    )
    assert savings(price(cart_of(BREAD), [PROMOS[2], amount])) == {"B2": 100}
    later = Promotion(
        "B2",
        PromoKind.AMOUNT_OFF,
        "",
        "",
        departments=frozenset({"bakery"}),
        amount=cny(100),
        priority=150,
    )
    assert savings(price(cart_of(BREAD), [PROMOS[2], later])) == {"BAKERY": 250}


def test_tax_inclusive_per_class():
    priced = price(cart_of(BREAD, (CHIPS, 1)), [])
    by_class = {t.tax_class: t.tax.minor for t in priced.tax}
    # food 12.50 incl. 9%: 1250*9/109 = 103.2 -> 103; standard 8.50 incl 13% = 97.79 -> 98
    assert by_class == {"food": 103, "standard": 98}
    assert priced.total.minor == 2100


def test_tax_exclusive_adds_tax():
    us = TaxPolicy(TaxMode.EXCLUSIVE, {"standard": Fraction(8875, 100000), "food": Fraction(0)})
    priced = price(cart_of((CHIPS, 2)), [], tax=us)
    # 17.00 * 8.875% = 1.50875 -> 1.51
    assert priced.tax_total.minor == 151
    assert priced.total.minor == 1700 + 151


def test_weighed_line_rounds_half_away():
    grapes = product(11, 1980, unit=Unit.KG)
    # 19.80/kg * 0.125 kg = 2.475 -> 2.48
    assert price(cart_of((grapes, 125)), []).total.minor == 248


def test_label_price_charged_as_printed():
    cart = Cart()
    cart.add(ScannedItem(STEAK, ScannedCode(CodeKind.GTIN, (STEAK.code,)), 1, None, cny(4321)))
    assert price(cart, [], member=True).total.minor == 4321


def test_promotion_file_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown field"):
        promotion_from_dict({"promo_id": "A", "kind": "percent_off", "percnt": 5}, "CNY")
    with pytest.raises(ValueError, match="kind must be"):
        promotion_from_dict({"promo_id": "A", "kind": "bogo"}, "CNY")
    with pytest.raises(ValueError, match="string like"):
        promotion_from_dict({"promo_id": "A", "kind": "amount_off", "amount": 1.5}, "CNY")
    with pytest.raises(ValueError, match="buy > pay"):
        promotion_from_dict({"promo_id": "A", "kind": "multi_buy", "buy": 2, "pay": 2}, "CNY")


# --- properties ----------------------------------------------------------
SHELF = [
    *YOGURT,
    *TEA,
    BREAD,
    CHIPS,
    product(12, 1999, dept="household"),
    product(13, 1, dept="snacks"),
]
WEIGHED = [STEAK, product(14, 698, unit=Unit.KG, dept="produce", member=598)]

entries = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(SHELF), st.integers(1, 7)),
        st.tuples(st.sampled_from(WEIGHED), st.integers(1, 5000)),
    ),
    min_size=1,
    max_size=12,
)


def build(entry_list):
    return cart_of(*entry_list)


@settings(max_examples=200, deadline=None)
@given(entries, st.booleans(), st.randoms(use_true_random=False))
def test_scan_order_does_not_change_the_result(entry_list, member, rnd):
    shuffled = list(entry_list)
    rnd.shuffle(shuffled)
    a = price(build(entry_list), member=member)
    b = price(build(shuffled), member=member)
    assert a.total == b.total
    assert a.savings_by_code() == b.savings_by_code()

    def line_view(priced):
        return sorted(
            (line.line.product.code, line.line.quantity, line.line.weight_g or 0, line.total.minor)
            for line in priced.lines
        )

    assert line_view(a) == line_view(b)


@settings(max_examples=200, deadline=None)
@given(entries, st.booleans())
def test_totals_add_up_and_are_never_negative(entry_list, member):
    priced = price(build(entry_list), member=member)
    for line in priced.lines:
        assert line.total.minor >= 0
        assert line.total == line.regular - sum((a.saving for a in line.adjustments), cny(0))
        assert all(a.saving.minor > 0 for a in line.adjustments)
    assert priced.total == sum((line.total for line in priced.lines), cny(0))
    assert priced.subtotal - priced.savings == priced.total
    assert priced.total.minor >= 0
    assert type(priced.total.minor) is int
    assert all(type(t.tax.minor) is int for t in priced.tax)


@settings(max_examples=100, deadline=None)
@given(entries)
def test_member_never_pays_more(entry_list):
    cart = build(entry_list)
    assert price(cart, member=True).total <= price(cart, member=False).total


def test_cart_line_sort_key_ignores_scan_order_except_for_identical_lines():
    a = CartLine(1, BREAD)
    b = CartLine(2, CHIPS)
    assert sorted([b, a], key=CartLine.sort_key) == sorted([a, b], key=CartLine.sort_key)
