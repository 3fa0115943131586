"""Issue 19, unlabelled produce: the "Find produce" grid, from the catalogue query to a tile.

The query (app.storage.catalogue_repo ``plu_products`` / ``plu_departments`` behind
app.services.catalogue ``produce_grid``) on a real SQLite catalogue; the lane's grid, where
a picked tile must add exactly what typing its PLU adds (same line, same event rows);
item pictures (app.services.pictures) refusing what they cannot show.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from app import bootstrap
from app.config import load_settings
from app.lane import Screen
from app.services.catalogue import import_catalogue, produce_grid
from app.services.demo_seed import seed_pictures
from app.services.pictures import Pictures
from app.storage.catalogue_repo import SqliteCatalogue

HEADER = ("code,name_zh,name_en,price,member_price,unit,tax_class,min_age,quantity_limit,"
          "department,image\n")
ROWS = [
    "4046,牛油果,Avocado,6.90,,each,food,0,,produce,p/4046.png",
    "94046,有机牛油果,Organic Avocado,11.90,,each,food,0,,produce,",
    "4053,柠檬,Lemon,2.50,,each,food,0,,produce,",
    "4011,香蕉,Bananas,6.98,,kg,food,0,,produce,",
    "1001,菠萝包,Pineapple Bun,4.50,,each,food,0,,bakery,",
    "1002,奶油_面包,Cream 100% Bun,5.00,,each,food,0,,bakery,",
    # Not PLUs: same words, but a barcode of their own (a shopper scans these)
    "6900000000014,牛油果酱,Avocado Dip,16.00,,each,food,0,,produce,",
    "2100101000003,柠檬片,Lemon Slices,12.00,,kg,food,0,,produce,",
]


@pytest.fixture
def shop(kiosk, tmp_path):
    path = tmp_path / "catalogue.csv"
    path.write_text(HEADER + "\n".join(ROWS) + "\n", encoding="utf-8")
    import_catalogue(kiosk.catalogue, path, tax_classes=frozenset({"food", "standard"}),
                     replace=True)
    return kiosk


def names(grid) -> list[str]:
    return [p.name_en for p in grid.items]


def test_departments_are_those_selling_plu_items_with_their_counts(shop):
    grid = produce_grid(shop.catalogue)
    assert grid.departments == (("bakery", 2), ("produce", 4))
    assert names(grid) == ["Avocado", "Bananas", "Cream 100% Bun", "Lemon", "Organic Avocado",
                           "Pineapple Bun"]
    assert [p.code for p in produce_grid(shop.catalogue, department="bakery").items] == [
        "PLU:1002", "PLU:1001"]
    assert not grid.more


def test_only_plu_items_never_the_barcoded_ones_with_the_same_words(shop):
    everything = produce_grid(shop.catalogue, limit=100)
    assert all(p.code.startswith("PLU:") for p in everything.items)
    assert "Avocado Dip" not in names(produce_grid(shop.catalogue, search="avocado"))
    assert "Lemon Slices" not in names(produce_grid(shop.catalogue, search="柠檬"))


def test_search_matches_either_language_case_insensitively(shop):
    c = shop.catalogue
    assert names(produce_grid(c, search="AVOCADO")) == ["Avocado", "Organic Avocado"]
    assert names(produce_grid(c, search="  avoc ")) == ["Avocado", "Organic Avocado"]
    assert names(produce_grid(c, search="牛油果")) == ["Avocado", "Organic Avocado"]
    assert names(produce_grid(c, search="有机")) == ["Organic Avocado"]
    assert names(produce_grid(c, search="bun", department="bakery")) == [
        "Cream 100% Bun", "Pineapple Bun"]
    assert names(produce_grid(c, search="bun", department="produce")) == []
    # LIKE's wildcards are the shopper's letters, not patterns
    assert names(produce_grid(c, search="%")) == ["Cream 100% Bun"]
    assert names(produce_grid(c, search="_")) == ["Cream 100% Bun"]
    assert names(produce_grid(c, search="xyz")) == []


def test_a_long_list_is_cut_and_says_so(shop):
    grid = produce_grid(shop.catalogue, limit=3)
    assert len(grid.items) == 3 and grid.more


def test_the_query_is_a_range_seek_of_the_primary_key_not_a_scan(shop):
    # The speed on a million rows is measured in bench/produce_bench.py; here, that the
    # plan SQLite picks stays a seek on the key range of PLU items (a scan of the
    # catalogue would read every row).
    conn = shop.db.conn
    for sql in _captured_sql(shop.catalogue):
        plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql[0], sql[1]))
        assert "SEARCH products USING PRIMARY KEY (code>? AND code<?)" in plan, plan


def _captured_sql(catalogue: SqliteCatalogue) -> list[tuple[str, tuple]]:
    seen: list[tuple[str, tuple]] = []

    class Spy:
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, args=()):
            seen.append((sql, tuple(args)))
            return self.conn.execute(sql, args)

    real = catalogue._conn
    catalogue._conn = Spy(real)
    try:
        produce_grid(catalogue, department="produce", search="avo")
    finally:
        catalogue._conn = real
    assert len(seen) == 2
    return seen


# --- the lane: a tile is the typed PLU --------------------------------------------------------
def _lane(tmp_path: Path, clock, name: str):
    settings = load_settings(data_dir=tmp_path / name, environ={})
    kiosk = bootstrap.build(settings, clock=clock)
    path = tmp_path / "catalogue.csv"
    path.write_text(HEADER + "\n".join(ROWS) + "\n", encoding="utf-8")
    import_catalogue(kiosk.catalogue, path, tax_classes=frozenset({"food", "standard"}),
                     replace=True)
    lane = bootstrap.build_lane(kiosk, receipt_notice=lambda: None)
    lane.boot()
    lane.start()
    lane.skip_member()
    return kiosk, lane


def _events(kiosk) -> list[tuple[str, dict]]:
    rows = kiosk.db.execute("SELECT type, payload FROM outbox ORDER BY seq").fetchall()
    return [(t, json.loads(p)) for t, p in rows]


def _lines(lane):
    return [(pl.line.product, pl.line.quantity, pl.line.weight_g, pl.total)
            for pl in lane.view.priced.lines]


@pytest.mark.parametrize("plu", ["4046", "94046", "4011"])
def test_picking_a_tile_adds_what_typing_its_plu_adds(tmp_path, clock, plu):
    typed_kiosk, typed = _lane(tmp_path, clock, "typed")
    picked_kiosk, picked = _lane(tmp_path, clock, "picked")
    try:
        typed.typed_code(plu)

        picked.find_produce()
        assert picked.view.produce is not None
        assert f"PLU:{plu}" in [p.code for p in picked.view.produce.items]
        picked.find_produce("", "avo" if plu != "4011" else "香蕉")
        picked.pick_produce(f"PLU:{plu}")

        assert picked.view.produce is None and picked.view.screen is Screen.SHOPPING
        assert _lines(picked) == _lines(typed)
        assert picked.view.notice == typed.view.notice
        assert picked.view.last_line_id == typed.view.last_line_id
        assert _events(picked_kiosk) == _events(typed_kiosk)
        kinds = [t for t, _ in _events(picked_kiosk)]
        # bananas are sold by weight: typing the PLU is refused (weigh, scan the label)
        if plu == "4011":
            assert picked.view.notice.values[0] == ("code", "needs_weighing")
            assert kinds[-1] == "scan_rejected" and _lines(picked) == []
        else:
            assert kinds[-1] == "item_scanned" and len(_lines(picked)) == 1
    finally:
        typed_kiosk.close()
        picked_kiosk.close()


def test_the_grid_only_opens_on_the_shopping_screen_and_picks_only_while_open(tmp_path, clock):
    kiosk, lane = _lane(tmp_path, clock, "k")
    try:
        lane.pick_produce("PLU:4046")  # not open: nothing
        assert _lines(lane) == []
        lane.find_produce("produce")
        assert [d for d, _ in lane.view.produce.departments] == ["bakery", "produce"]
        lane.pick_produce("6900000000014")  # not a PLU: ignored, grid stays
        assert lane.view.produce is not None and _lines(lane) == []
        lane.close_produce()
        assert lane.view.produce is None and _lines(lane) == []
        lane.abandon("test")
        lane.find_produce()
        assert lane.view.produce is None  # no session: no grid
    finally:
        kiosk.close()


# --- pictures ----------------------------------------------------------------------------------
def test_a_missing_or_unreadable_picture_falls_back_and_is_logged_once(tmp_path, caplog):
    folder = tmp_path / "images"
    (folder / "p").mkdir(parents=True)
    from PIL import Image
    Image.new("RGB", (8, 8), (200, 0, 0)).save(folder / "p" / "good.png")
    (folder / "p" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (folder / "p" / "notes.txt").write_text("hello")
    (tmp_path / "secret.png").write_bytes((folder / "p" / "good.png").read_bytes())
    pictures = Pictures(folder)
    caplog.set_level(logging.WARNING, logger="app.services.pictures")
    assert pictures.path("p/good.png") == str((folder / "p" / "good.png").resolve())
    for bad in ("p/missing.png", "p/broken.png", "p/notes.txt", "../secret.png",
                str(tmp_path / "secret.png")):
        assert pictures.path(bad) == "", bad
        assert pictures.path(bad) == "", bad  # asked again on the next redraw
    assert pictures.path("") == ""
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 5, warned  # once per bad picture, not per redraw
    assert "no such file" in warned[0] and "unreadable" in warned[1]


def test_the_demo_store_draws_every_picture_its_catalogue_names(demo_kiosk):
    folder = demo_kiosk.settings.images_path
    pictured = demo_kiosk.catalogue.pictured()
    assert len(pictured) >= 20
    pictures = Pictures(folder)
    for image, _name, _dept in pictured:
        assert pictures.path(image), image
    grid = produce_grid(demo_kiosk.catalogue)
    assert {d for d, _ in grid.departments} == {"produce", "bakery"}
    assert all(pictures.path(p.image) for p in grid.items)
    assert seed_pictures(demo_kiosk.catalogue, folder) == []  # drawn once, not again
