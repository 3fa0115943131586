"""The shopper's payment code (付款码): telling one apart, its wallet, keeping it secret.

A wallet's payment code is the barcode and QR a shopper's WeChat Pay, Alipay or
UnionPay app shows for a merchant to scan (customer-presented payment). It is a
bearer credential for the shopper's money for about a minute, so the kiosk holds
it only inside a ``PaymentCode``, whose ``repr``/``str``/format never show the
digits: a code that reaches a log line, an exception, an event or the screen by
accident shows as ``PaymentCode(wechat, 18 digits)``. The digits leave only
through ``reveal()``, which the payment adapter calls to build its request.

Which wallet issued a code is told by its published prefix and length:

- WeChat Pay: 18 digits beginning 10, 11, 12, 13, 14 or 15 (WeChat Pay, 付款码支付
  开发指引: "用户付款码规则: 18位纯数字，前缀以10、11、12、13、14、15开头");
- Alipay: 16 to 24 digits beginning 25 to 30 (Alipay open API, alipay.trade.pay,
  auth_code: "支付授权码，25~30开头的长度为16~24位的数字");
- UnionPay (云闪付 and bank apps): 19 digits beginning 62 (China UnionPay, 二维码支付
  付款码规范: "62开头的19位数字").

The ranges are settings (``payment.code_ranges``), so a store can add a wallet its
gateway takes or follow a platform that widens its range; ``DEFAULT_CODE_RANGES``
holds the published ones. No GTIN (at most 14 digits) falls in any of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

WECHAT, ALIPAY, UNIONPAY = "wechat", "alipay", "unionpay"


@dataclass(frozen=True, slots=True)
class CodeRange:
    """One wallet's payment codes: all digits, one of ``prefixes``, one of ``lengths``."""

    wallet: str
    prefixes: tuple[str, ...]
    lengths: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.wallet or not self.prefixes or not self.lengths:
            raise ValueError("a payment code range names a wallet, prefixes and lengths")
        if any(not p.isdigit() or not p.isascii() for p in self.prefixes):
            raise ValueError(f"{self.wallet}: prefixes are digits, got {self.prefixes}")
        if any(n < 10 or n > 32 for n in self.lengths):
            raise ValueError(f"{self.wallet}: payment code lengths are 10-32 digits")
        if any(len(p) >= min(self.lengths) for p in self.prefixes):
            raise ValueError(f"{self.wallet}: a prefix is shorter than the code")

    def takes(self, text: str) -> bool:
        return (len(text) in self.lengths and text.isdigit() and text.isascii()
                and text.startswith(self.prefixes))


DEFAULT_CODE_RANGES: tuple[CodeRange, ...] = (
    CodeRange(WECHAT, ("10", "11", "12", "13", "14", "15"), (18,)),
    CodeRange(ALIPAY, ("25", "26", "27", "28", "29", "30"), tuple(range(16, 25))),
    CodeRange(UNIONPAY, ("62",), (19,)),
)


def code_ranges_from(table: Mapping[str, Mapping[str, Iterable[object]]]) -> tuple[CodeRange, ...]:
    """Ranges from settings: ``{wallet: {"prefixes": ["10", ...], "lengths": [18]}}``.

    Lengths may be given as ``"16-24"`` strings or integers. Raises ``ValueError``
    naming the wallet for anything malformed."""
    ranges = []
    for wallet, spec in table.items():
        try:
            prefixes = tuple(str(p) for p in spec["prefixes"])
            lengths: list[int] = []
            for item in spec["lengths"]:
                if isinstance(item, str) and "-" in item:
                    low, high = item.split("-", 1)
                    lengths.extend(range(int(low), int(high) + 1))
                else:
                    lengths.append(int(str(item)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"payment code range {wallet!r}: {exc}") from None
        ranges.append(CodeRange(wallet, prefixes, tuple(sorted(set(lengths)))))
    return tuple(ranges)


def wallet_of(text: str, ranges: Iterable[CodeRange] = DEFAULT_CODE_RANGES) -> str | None:
    """The wallet whose payment code ``text`` is, or None if it is no wallet's (the first
    range that takes it wins, so a store's own range listed first can narrow another)."""
    for r in ranges:
        if r.takes(text):
            return r.wallet
    return None


class PaymentCode:
    """A wallet's payment code, never shown: ``str``, ``repr`` and formatting give only the
    wallet and the length. ``reveal()`` gives the digits, for the adapter's request alone.
    """

    __slots__ = ("_digits", "wallet")

    def __init__(self, digits: str, wallet: str) -> None:
        if not digits.isdigit() or not digits.isascii():
            raise ValueError("a payment code is digits")
        self._digits = digits
        self.wallet = wallet

    def reveal(self) -> str:
        """The digits, to put in the provider's request (and nowhere else)."""
        return self._digits

    def __len__(self) -> int:
        return len(self._digits)

    def __repr__(self) -> str:
        return f"PaymentCode({self.wallet}, {len(self._digits)} digits)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PaymentCode) and other._digits == self._digits

    def __hash__(self) -> int:
        return hash(("PaymentCode", self._digits))

    def __reduce__(self) -> str | tuple[object, ...]:
        # Never pickled into another process or a file by accident.
        raise TypeError("a payment code is not serialisable")


def payment_code(text: str, ranges: Iterable[CodeRange] = DEFAULT_CODE_RANGES) \
        -> PaymentCode | None:
    """``text`` as a ``PaymentCode`` if it is some wallet's code, else None."""
    wallet = wallet_of(text, ranges)
    return PaymentCode(text, wallet) if wallet is not None else None


# Why a wallet declined a charge at once, in the kiosk's words (each has a shopper message).
DECLINES = ("insufficient_funds", "code_expired", "code_used", "code_invalid", "declined")


__all__ = [
    "ALIPAY",
    "DECLINES",
    "DEFAULT_CODE_RANGES",
    "UNIONPAY",
    "WECHAT",
    "CodeRange",
    "PaymentCode",
    "code_ranges_from",
    "payment_code",
    "wallet_of",
]
