"""Generates the demo store's catalogue (seeds/catalogue.csv): run it to rebuild the file.

Codes are fictional but valid: GTIN-13s under the 690 (China) prefix range with
a made-up company number, scale-label items keyed as prefix-21 RCNs with the
weight part zeroed, and IFPS-style PLUs for loose produce. Deterministic: the
same script always writes the same file.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.domain.gtin import check_digit  # noqa: E402
from app.services.catalogue import OPTIONAL_COLUMNS, REQUIRED_COLUMNS  # noqa: E402

# (department, tax class, [(zh, en, price yuan, member price or "", sizes)])
PACKAGED = [
    (
        "dairy",
        "food",
        [
            ("纯牛奶", "Whole Milk", "6.50", "5.90", ["250ml", "1L*3.2"]),
            ("低脂牛奶", "Low-fat Milk", "7.20", "", ["1L"]),
            ("原味酸奶", "Plain Yogurt", "4.50", "", ["150g", "450g*2.6"]),
            ("草莓酸奶", "Strawberry Yogurt", "4.80", "", ["150g"]),
            ("蓝莓酸奶", "Blueberry Yogurt", "4.80", "", ["150g"]),
            ("黄油", "Butter", "18.90", "16.90", ["200g"]),
            ("切达奶酪片", "Cheddar Slices", "22.00", "", ["200g"]),
            ("鲜鸡蛋", "Fresh Eggs", "15.80", "13.80", ["10pcs", "30pcs*2.8"]),
        ],
    ),
    (
        "drinks",
        "standard",
        [
            ("矿泉水", "Mineral Water", "2.00", "", ["550ml", "1.5L*2.2"]),
            ("苏打水", "Soda Water", "3.50", "", ["330ml"]),
            ("可乐", "Cola", "3.00", "", ["330ml", "1.25L*2.6"]),
            ("柠檬茶", "Lemon Tea", "4.00", "", ["500ml"]),
            ("绿茶饮料", "Green Tea Drink", "3.50", "", ["500ml"]),
            ("乌龙茶饮料", "Oolong Tea Drink", "4.00", "", ["500ml"]),
            ("橙汁", "Orange Juice", "9.90", "8.90", ["1L"]),
            ("苹果汁", "Apple Juice", "9.90", "", ["1L"]),
            ("椰子水", "Coconut Water", "8.50", "", ["330ml"]),
            ("咖啡饮料", "Coffee Drink", "6.50", "", ["280ml"]),
            ("运动饮料", "Sports Drink", "5.00", "", ["600ml"]),
            ("豆奶", "Soy Milk", "3.80", "", ["250ml"]),
        ],
    ),
    (
        "snacks",
        "food",
        [
            ("薯片原味", "Potato Chips Original", "8.50", "", ["70g", "150g*1.8"]),
            ("薯片烧烤味", "Potato Chips BBQ", "8.50", "", ["70g"]),
            ("苏打饼干", "Soda Crackers", "6.90", "", ["200g"]),
            ("巧克力", "Milk Chocolate", "12.90", "11.50", ["100g"]),
            ("黑巧克力", "Dark Chocolate", "15.90", "", ["100g"]),
            ("混合坚果", "Mixed Nuts", "29.90", "26.90", ["250g"]),
            ("牛肉干", "Beef Jerky", "25.00", "", ["100g"]),
            ("海苔", "Seaweed Snack", "9.90", "", ["40g"]),
            ("果冻", "Fruit Jelly", "11.50", "", ["6pcs"]),
            ("爆米花", "Popcorn", "7.50", "", ["100g"]),
            ("口香糖", "Chewing Gum", "9.00", "", ["40g"]),
            ("曲奇饼干", "Butter Cookies", "19.90", "", ["300g"]),
        ],
    ),
    (
        "grocery",
        "food",
        [
            ("东北大米", "Northeast Rice", "39.90", "35.90", ["5kg", "2.5kg*0.55"]),
            ("挂面", "Dried Noodles", "6.80", "", ["1kg"]),
            ("方便面", "Instant Noodles", "4.50", "", ["1pc", "5pcs*4.4"]),
            ("生抽酱油", "Light Soy Sauce", "12.80", "", ["500ml"]),
            ("老抽酱油", "Dark Soy Sauce", "13.50", "", ["500ml"]),
            ("香醋", "Black Vinegar", "9.50", "", ["500ml"]),
            ("花生油", "Peanut Oil", "69.90", "62.90", ["1.8L"]),
            ("白砂糖", "White Sugar", "7.90", "", ["500g"]),
            ("食盐", "Table Salt", "3.50", "", ["400g"]),
            ("鸡精", "Chicken Bouillon", "11.90", "", ["200g"]),
            ("番茄酱", "Ketchup", "8.90", "", ["320g"]),
            ("燕麦片", "Rolled Oats", "18.50", "", ["1kg"]),
            ("蜂蜜", "Honey", "35.00", "", ["500g"]),
            ("午餐肉罐头", "Luncheon Meat", "16.90", "", ["340g"]),
            ("金枪鱼罐头", "Tuna Can", "13.90", "", ["185g"]),
        ],
    ),
    (
        "bakery",
        "food",
        [
            ("全麦面包", "Wholemeal Bread", "12.50", "", ["400g"]),
            ("吐司面包", "White Toast", "9.90", "", ["400g"]),
            ("牛角包", "Croissant", "6.50", "", ["1pc", "4pcs*3.6"]),
            ("蛋糕卷", "Swiss Roll", "15.00", "", ["300g"]),
            ("月饼礼盒", "Mooncake Gift Box", "128.00", "108.00", ["6pcs"]),
        ],
    ),
    (
        "frozen",
        "food",
        [
            ("速冻水饺猪肉白菜", "Pork & Cabbage Dumplings", "22.90", "19.90", ["1kg"]),
            ("速冻汤圆", "Frozen Tangyuan", "13.50", "", ["500g"]),
            ("冰淇淋香草", "Vanilla Ice Cream", "8.00", "", ["1pc", "4pcs*3.6"]),
            ("冷冻虾仁", "Frozen Shrimp", "59.90", "", ["500g"]),
            ("速冻披萨", "Frozen Pizza", "29.90", "", ["400g"]),
        ],
    ),
    (
        "household",
        "standard",
        [
            ("洗衣液", "Laundry Liquid", "39.90", "34.90", ["2kg"]),
            ("洗洁精", "Dish Soap", "12.90", "", ["1.1kg"]),
            ("卷纸", "Toilet Paper", "32.90", "", ["10 rolls"]),
            ("抽纸", "Facial Tissues", "18.90", "", ["3 packs"]),
            ("垃圾袋", "Bin Bags", "9.90", "", ["50pcs"]),
            ("保鲜膜", "Cling Film", "11.90", "", ["30m"]),
            ("电池", "AA Batteries", "19.90", "", ["4pcs"]),
            ("湿巾", "Wet Wipes", "8.90", "", ["80pcs"]),
        ],
    ),
    (
        "personal_care",
        "standard",
        [
            ("牙膏", "Toothpaste", "15.90", "", ["120g"]),
            ("牙刷", "Toothbrush", "9.90", "", ["2pcs"]),
            ("洗发水", "Shampoo", "45.90", "39.90", ["400ml"]),
            ("沐浴露", "Body Wash", "36.90", "", ["500ml"]),
            ("香皂", "Soap Bar", "6.50", "", ["3pcs"]),
            ("护手霜", "Hand Cream", "19.90", "", ["50ml"]),
        ],
    ),
]
# Age-restricted (18+): staff approve before payment; a per-customer limit on some.
AGE_RESTRICTED = [
    (
        "alcohol",
        "standard",
        [
            ("青岛啤酒", "Tsingtao Beer", "6.50", "", ["500ml", "6x330ml*4.8"]),
            ("燕京啤酒", "Yanjing Beer", "5.50", "", ["500ml"]),
            ("红葡萄酒", "Red Wine", "89.00", "79.00", ["750ml"]),
            ("白葡萄酒", "White Wine", "79.00", "", ["750ml"]),
            ("二锅头", "Erguotou Baijiu", "15.00", "", ["500ml"]),
            ("米酒", "Rice Wine", "12.00", "", ["500ml"]),
        ],
    ),
    (
        "tobacco",
        "standard",
        [
            ("香烟", "Cigarettes", "25.00", "", ["20pcs"]),
            ("打火机", "Lighter", "3.00", "", ["1pc"]),
        ],
    ),
]
# Sold by weight with a scale label (RCN prefix 21, weight in grams): price per kg.
WEIGHED = [
    (
        "produce",
        "food",
        [
            ("香蕉", "Bananas", "6.98", "5.98"),
            ("苹果", "Apples", "12.80", ""),
            ("橙子", "Oranges", "9.90", ""),
            ("葡萄", "Grapes", "19.80", "17.80"),
            ("西红柿", "Tomatoes", "7.98", ""),
            ("黄瓜", "Cucumbers", "5.98", ""),
            ("土豆", "Potatoes", "3.98", ""),
            ("胡萝卜", "Carrots", "4.50", ""),
            ("大白菜", "Napa Cabbage", "2.98", ""),
            ("西兰花", "Broccoli", "11.80", ""),
            ("洋葱", "Onions", "3.50", ""),
            ("生姜", "Ginger", "16.00", ""),
            ("大蒜", "Garlic", "12.00", ""),
            ("菠菜", "Spinach", "8.80", ""),
            ("芒果", "Mangoes", "18.80", ""),
            ("西瓜", "Watermelon", "3.98", ""),
        ],
    ),
    (
        "meat",
        "food",
        [
            ("猪五花肉", "Pork Belly", "38.00", "35.00"),
            ("猪里脊", "Pork Loin", "42.00", ""),
            ("牛腱子", "Beef Shank", "89.00", ""),
            ("鸡胸肉", "Chicken Breast", "26.00", ""),
            ("鸡翅中", "Chicken Wings", "49.80", ""),
            ("三文鱼", "Salmon", "168.00", ""),
            ("鲈鱼", "Sea Bass", "58.00", ""),
            ("基围虾", "Prawns", "98.00", ""),
        ],
    ),
    (
        "deli",
        "food",
        [
            ("散装瓜子", "Loose Sunflower Seeds", "32.00", ""),
            ("散装红枣", "Loose Red Dates", "28.00", ""),
            ("散装糖果", "Pick & Mix Sweets", "45.00", ""),
            ("卤牛肉", "Braised Beef", "120.00", ""),
        ],
    ),
]
# Loose items sold by the piece without a barcode, keyed by PLU: typed on the code pad
# or picked by picture ("Find produce"). Produce uses IFPS codes; the bakery's loose
# buns use the store's own range.
PLU_EACH = [
    ("4046", "牛油果", "Avocado", "6.90", "produce"),
    ("4053", "柠檬", "Lemon", "2.50", "produce"),
    ("4225", "大牛油果", "Large Avocado", "9.90", "produce"),
    ("3082", "玉米", "Sweet Corn", "3.50", "produce"),
    ("4593", "椰青", "Young Coconut", "12.00", "produce"),
    ("4959", "菠萝", "Pineapple", "15.00", "produce"),
    ("94046", "有机牛油果", "Organic Avocado", "11.90", "produce"),
    ("4664", "番石榴", "Guava", "4.50", "produce"),
    ("1001", "菠萝包", "Pineapple Bun", "4.50", "bakery"),
    ("1002", "奶油面包", "Cream Bun", "5.00", "bakery"),
    ("1003", "法式长棍", "Baguette", "8.00", "bakery"),
]
# The demo store's pictures: the `image` column names a file under the catalogue's
# picture folder (catalogue.images_dir); `kiosk demo` draws them at seed time
# (app.services.demo_seed.seed_pictures), so no image file is kept in the repository.
PICTURED_DEPARTMENTS = ("produce",)

COMPANY = "690000"  # fictional company number under the GS1 China prefix range


def gtin13(item: int) -> str:
    payload = f"{COMPANY}{item:06d}"
    return payload + str(check_digit(payload))


def rcn_key(item: int) -> str:
    payload = f"21{item:05d}00000"
    return payload + str(check_digit(payload))


def rows() -> list[list[str]]:
    out: list[list[str]] = []
    item = 1
    for groups, min_age in ((PACKAGED, 0), (AGE_RESTRICTED, 18)):
        for dept, tax, products in groups:
            for zh, en, price, member, sizes in products:
                for entry in sizes:
                    # "1L*3.2": the 1 L pack costs 3.2 times the first size, to 10 fen.
                    size, _, factor = entry.partition("*")
                    scale = float(factor or 1)
                    p = f"{round(float(price) * scale, 1):.2f}"
                    m = f"{round(float(member) * scale, 1):.2f}" if member else ""
                    limit = "6" if dept in ("alcohol", "tobacco") and size != "1pc" else ""
                    if en == "Fresh Eggs":
                        limit = "2"
                    out.append(
                        [
                            gtin13(item),
                            f"{zh} {size}",
                            f"{en} {size}",
                            p,
                            m,
                            "each",
                            tax,
                            str(min_age),
                            limit,
                            dept,
                            "",
                        ]
                    )
                    item += 1
                    # A few more flavours/variants so the demo store is a real shelf.
                    if dept in ("drinks", "snacks", "dairy", "grocery") and entry == sizes[0]:
                        for suffix_zh, suffix_en in (
                            ("（家庭装）", " Family Pack"),
                            ("（促销装）", " Promo Pack"),
                        ):
                            out.append(
                                [
                                    gtin13(item),
                                    f"{zh} {size}{suffix_zh}",
                                    f"{en} {size}{suffix_en}",
                                    f"{float(p) * 2.6:.1f}0" if "Family" in suffix_en else p,
                                    "",  # noqa: E501
                                    "each",
                                    tax,
                                    str(min_age),
                                    "",
                                    dept,
                                    "",
                                ]
                            )
                            item += 1
    rcn_item = 101
    for dept, tax, products in WEIGHED:
        for zh, en, price, member in products:
            key = rcn_key(rcn_item)
            image = f"demo/{key}.png" if dept in PICTURED_DEPARTMENTS else ""
            out.append([key, zh, en, price, member, "kg", tax, "0", "", dept, image])
            rcn_item += 1
    for plu, zh, en, price, dept in PLU_EACH:
        out.append([plu, zh, en, price, "", "each", "food", "0", "", dept, f"demo/plu-{plu}.png"])
    return out


HEADER = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]  # the catalogue file format


def main() -> None:
    target = Path(__file__).resolve().parent / "catalogue.csv"
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
