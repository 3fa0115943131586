import pytest

from app.domain.barcodes import CodeKind, ScannedCode
from app.domain.cart import Cart
from app.domain.catalogue import ScannedItem, Unit
from app.domain.rejections import Refused
from tests.unit.factories import cny, product


def item(p, quantity=1, weight_g=None, label_price=None):
    code = ScannedCode(CodeKind.GTIN, (p.code,))
    return ScannedItem(p, code, quantity, weight_g, label_price)


def refused_code(fn, *args):
    with pytest.raises(Refused) as info:
        fn(*args)
    return info.value.refusal.code


def test_same_item_scanned_twice_is_one_line():
    cart = Cart()
    milk = product(1, 650)
    first = cart.add(item(milk))
    second = cart.add(item(milk))
    assert first.line_id == second.line_id
    assert cart.lines[0].quantity == 2
    assert cart.item_count() == 2


def test_weighed_items_get_their_own_lines():
    cart = Cart()
    bananas = product(2, 698, unit=Unit.KG)
    cart.add(item(bananas, weight_g=1200))
    cart.add(item(bananas, weight_g=800))
    assert [line.weight_g for line in cart.lines] == [1200, 800]
    assert refused_code(cart.set_quantity, cart.lines[0].line_id, 2) == "weighed_line_quantity"


def test_quantity_limit_across_lines():
    cart = Cart()
    eggs = product(3, 1580, limit=2)
    cart.add(item(eggs))
    cart.add(item(eggs))
    assert refused_code(cart.add, item(eggs)) == "quantity_limit"
    assert refused_code(cart.set_quantity, cart.lines[0].line_id, 3) == "quantity_limit"
    assert cart.lines[0].quantity == 2


def test_set_quantity_and_remove():
    cart = Cart()
    line = cart.add(item(product(4, 100)))
    cart.set_quantity(line.line_id, 5)
    assert cart.lines[0].quantity == 5
    assert refused_code(cart.set_quantity, line.line_id, 0) == "bad_quantity"
    assert refused_code(cart.set_quantity, line.line_id, 100) == "quantity_too_large"
    cart.remove(line.line_id)
    assert cart.lines == []
    assert refused_code(cart.remove, line.line_id) == "no_such_line"


def test_age_restricted_line_blocks_payment_until_approved():
    cart = Cart()
    cart.add(item(product(5, 100)))
    beer = cart.add(item(product(6, 650, min_age=18)))
    assert not cart.ready_to_pay()
    assert [line.line_id for line in cart.pending_age_checks()] == [beer.line_id]
    cart.approve_age(beer.line_id)
    assert cart.ready_to_pay()


def test_empty_cart_is_not_ready_to_pay():
    assert not Cart().ready_to_pay()


def test_frozen_cart_refuses_changes():
    cart = Cart()
    line = cart.add(item(product(7, 100)))
    cart.frozen = True
    assert refused_code(cart.add, item(product(8, 100))) == "cart_frozen"
    assert refused_code(cart.set_quantity, line.line_id, 2) == "cart_frozen"
    assert refused_code(cart.remove, line.line_id) == "cart_frozen"


def test_label_price_line_is_kept_apart():
    cart = Cart()
    cake = product(9, 1500)
    cart.add(item(cake))
    cart.add(item(cake, label_price=cny(1200)))
    assert len(cart.lines) == 2


def test_restored_cart_continues_line_ids():
    cart = Cart()
    cart.add(item(product(10, 100)))
    restored = Cart(cart.lines, cart.next_line_id)
    line = restored.add(item(product(11, 100)))
    assert line.line_id == 2
