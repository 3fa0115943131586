import pytest

from app.bootstrap import PROJECT_ROOT
from app.services.catalogue import CatalogueImportError, import_catalogue

HEADER = "code,name_zh,name_en,price,member_price,unit,tax_class,min_age,quantity_limit,department,image\n"  # noqa: E501
TAX = frozenset({"standard", "food", "zero"})


def write(tmp_path, body, name="c.csv", header=HEADER):
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


def test_demo_catalogue_imports(kiosk):
    seen = []
    n = import_catalogue(
        kiosk.catalogue,
        PROJECT_ROOT / "seeds" / "catalogue.csv",
        tax_classes=TAX,
        replace=True,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert n == kiosk.catalogue.count() >= 200
    assert seen[-1][0] == seen[-1][1]  # progress reached 100%
    milk = kiosk.catalogue.get("06900000000014")
    assert milk.name_zh.startswith("纯牛奶") and milk.price.minor == 650


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("6900000000084,奶,Milk,1.00,,each,food,0,,dairy,", "wrong check digit"),
        ("6900000000083,奶,Milk,1.005,,each,food,0,,dairy,", "at most 2 decimals"),
        ("6900000000083,奶,Milk,abc,,each,food,0,,dairy,", "not an amount"),
        ("6900000000083,奶,Milk,1.00,2.00,each,food,0,,dairy,", "member_price is above price"),
        ("6900000000083,奶,Milk,1.00,,box,food,0,,dairy,", "unit must be"),
        ("6900000000083,奶,Milk,1.00,,each,luxury,0,,dairy,", "store.tax_classes"),
        ("6900000000083,,Milk,1.00,,each,food,0,,dairy,", "name_zh and name_en"),
        ("6900000000083,奶\x1b,Milk,1.00,,each,food,0,,dairy,", "control characters"),
        ("6900000000083,奶,Milk,1.00,,each,food,x,,dairy,", "whole numbers"),
        ("6900000000083,奶,Milk,1.00", "expected 11 fields"),
    ],
)
def test_bad_row_is_reported_with_line_and_nothing_changes(kiosk, tmp_path, row, reason):
    good = write(tmp_path, "6900000000014,纯牛奶,Milk,6.50,,each,food,0,,dairy,\n", "good.csv")
    import_catalogue(kiosk.catalogue, good, tax_classes=TAX, replace=True)
    bad = write(tmp_path, "6900000000021,酸奶,Yogurt,4.50,,each,food,0,,dairy,\n" + row + "\n")
    with pytest.raises(CatalogueImportError) as info:
        import_catalogue(kiosk.catalogue, bad, tax_classes=TAX, replace=True)
    assert info.value.errors[0].line == 3
    assert reason in info.value.errors[0].reason
    # the previous catalogue is untouched, and nothing from the bad file got in
    assert kiosk.catalogue.count() == 1
    assert kiosk.catalogue.get("06900000000014") is not None
    assert kiosk.catalogue.get("06900000000021") is None


def test_duplicate_codes_name_both_lines(kiosk, tmp_path):
    path = write(
        tmp_path, "4011,香蕉,Banana,1.00,,each,food,0,,p,\n4011,香蕉,Banana,1.00,,each,food,0,,p,\n"
    )
    with pytest.raises(CatalogueImportError, match="line 3: code 4011 already on line 2"):
        import_catalogue(kiosk.catalogue, path, tax_classes=TAX)


def test_many_errors_are_counted_but_only_the_first_listed(kiosk, tmp_path):
    rows = "".join(f"bad{i},x,y,1.00,,each,food,0,,d,\n" for i in range(50))
    with pytest.raises(CatalogueImportError) as info:
        import_catalogue(kiosk.catalogue, write(tmp_path, rows), tax_classes=TAX)
    assert info.value.error_count == 50
    assert len(info.value.errors) == 20
    assert "and 30 more" in str(info.value)


def test_header_problems(kiosk, tmp_path):
    with pytest.raises(CatalogueImportError, match="missing column"):
        import_catalogue(
            kiosk.catalogue, write(tmp_path, "", header="code,name_zh\n"), tax_classes=TAX
        )
    with pytest.raises(CatalogueImportError, match="unknown column"):
        import_catalogue(
            kiosk.catalogue,
            write(tmp_path, "", header=HEADER.strip() + ",colour\n"),
            tax_classes=TAX,
        )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CatalogueImportError, match="empty"):
        import_catalogue(kiosk.catalogue, empty, tax_classes=TAX)


def test_not_utf8_is_refused(kiosk, tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes(
        HEADER.encode() + "6900000000014,纯牛奶,Milk,6.50,,each,food,0,,dairy,\n".encode("gbk")
    )
    with pytest.raises(CatalogueImportError, match="not UTF-8"):
        import_catalogue(kiosk.catalogue, path, tax_classes=TAX)
    assert kiosk.catalogue.count() == 0


def test_merge_updates_and_adds_replace_swaps(kiosk, tmp_path):
    a = write(
        tmp_path,
        "6900000000014,纯牛奶,Milk,6.50,,each,food,0,,dairy,\n4011,香蕉,Banana,1.00,,each,food,0,,p,\n",
        "a.csv",
    )
    b = write(tmp_path, "6900000000014,纯牛奶,Milk,7.00,,each,food,0,,dairy,\n", "b.csv")
    import_catalogue(kiosk.catalogue, a, tax_classes=TAX, replace=True)
    import_catalogue(kiosk.catalogue, b, tax_classes=TAX)
    assert kiosk.catalogue.count() == 2
    assert kiosk.catalogue.get("06900000000014").price.minor == 700
    import_catalogue(kiosk.catalogue, b, tax_classes=TAX, replace=True)
    assert kiosk.catalogue.count() == 1


def test_minimal_columns_get_defaults(kiosk, tmp_path):
    path = write(
        tmp_path, "6900000000014,纯牛奶,Milk,6.50\n", header="code,name_zh,name_en,price\n"
    )
    import_catalogue(kiosk.catalogue, path, tax_classes=TAX)
    milk = kiosk.catalogue.get("06900000000014")
    assert (milk.unit.value, milk.tax_class, milk.min_age, milk.quantity_limit) == (
        "each",
        "standard",
        0,
        None,
    )


@pytest.mark.parametrize("parallel", [True, False])
def test_validation_in_a_second_process_gives_the_same_result(kiosk, tmp_path, parallel):
    good = PROJECT_ROOT / "seeds" / "catalogue.csv"
    assert (
        import_catalogue(kiosk.catalogue, good, tax_classes=TAX, replace=True, parallel=parallel)
        == 223
    )
    bad = write(tmp_path, "6900000000014,纯牛奶,Milk,6.50,,each,food,0,,dairy,\n" * 2)
    with pytest.raises(CatalogueImportError, match="line 3: code 6900000000014 already on line 2"):
        import_catalogue(kiosk.catalogue, bad, tax_classes=TAX, replace=True, parallel=parallel)
    assert kiosk.catalogue.count() == 223
