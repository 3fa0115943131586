"""The two-frame rule, the keyboard-wedge timing rule and the rejection rate limit."""

from __future__ import annotations

from devices.scanner import (
    KeyboardWedge,
    ReadAcceptor,
    RejectLimiter,
    Scan,
    ScanRejection,
    accept_input,
)

EAN = "]E06901234567892"
FRAME = 1 / 30


def feed(acceptor: ReadAcceptor, frames: list[list[str]]) -> list[list[str]]:
    return [acceptor.feed(codes, i * FRAME) for i, codes in enumerate(frames)]


# --- two-frame rule ------------------------------------------------------------------------
def test_one_read_is_not_enough_two_consecutive_reads_are():
    assert feed(ReadAcceptor(), [[EAN], [], [EAN], [EAN]]) == [[], [], [], [EAN]]


def test_a_misread_that_does_not_repeat_never_reaches_the_cart():
    wrong = "]E07034759003930"
    frames = [[EAN], [wrong], [EAN], [wrong], [EAN]]
    assert feed(ReadAcceptor(), frames) == [[], [], [], [], []]


def test_a_code_held_in_view_is_added_once():
    accepted = feed(ReadAcceptor(), [[EAN]] * 60)  # two seconds under the camera
    assert sum(accepted, []) == [EAN]


def test_frames_that_miss_a_code_in_view_do_not_make_it_new():
    # Motion blur loses a few frames; the packet never left, so no second unit.
    frames = [[EAN], [EAN]] + [[], [], [EAN], [], [], [], [EAN]] * 4
    assert sum(feed(ReadAcceptor(rescan_after_s=0.8), frames), []) == [EAN]


def test_taking_the_item_away_and_showing_it_again_adds_a_second_unit():
    frames = [[EAN], [EAN]] + [[]] * 30 + [[EAN], [EAN]]  # one second away
    accepted = feed(ReadAcceptor(rescan_after_s=0.8), frames)
    assert sum(accepted, []) == [EAN, EAN]


def test_skipped_frames_let_a_code_leave_the_view():
    acceptor = ReadAcceptor(rescan_after_s=0.8)
    assert acceptor.feed([EAN], 0.0) == [] and acceptor.feed([EAN], FRAME) == [EAN]
    acceptor.expire(1.0)  # the decoder skipped still, empty frames until now
    assert acceptor.in_view() == set()


def test_confirm_reads_is_configurable():
    assert feed(ReadAcceptor(confirm_reads=1), [[EAN]]) == [[EAN]]
    assert feed(ReadAcceptor(confirm_reads=3), [[EAN]] * 3) == [[], [], [EAN]]


def test_two_different_items_in_view_are_each_added_once():
    other = "]E096385074"
    accepted = feed(ReadAcceptor(), [[EAN, other], [other, EAN], [EAN, other]])
    assert sum(accepted, []) == [other, EAN] or sum(accepted, []) == [EAN, other]


# --- validation ----------------------------------------------------------------------------
def test_scanner_input_goes_through_the_domain_checks():
    scan = accept_input("]E06901234567892\r\n", "serial", 1.0)
    assert isinstance(scan, Scan)
    assert (scan.text, scan.symbology, scan.source) == ("6901234567892", "]E0", "serial")
    bad = accept_input("\x1b[2J6901234567892", "serial", 1.0)
    assert isinstance(bad, ScanRejection) and bad.refusal.code == "escape_character"
    assert "\x1b" not in bad.refusal.preview  # the raw bytes are escaped, never shown


def test_the_limiter_reports_a_burst_then_counts_the_rest():
    limiter = RejectLimiter(burst=5, window_s=1.0)
    allowed = [limiter.allow(i * 0.001) for i in range(1000)]
    assert allowed.count(True) == 5 and limiter.suppressed == 995
    assert limiter.allow(1.5)  # a new second, a new allowance


# --- keyboard wedge ------------------------------------------------------------------------
class Wedge:
    def __init__(self, **kw) -> None:
        self.scans: list[Scan] = []
        self.typed: list[str] = []
        self.rejected: list[ScanRejection] = []
        self.wedge = KeyboardWedge(self.scans.append, self.typed.append, self.rejected.append,
                                   **kw)

    def type(self, text: str, gap_ms: float, start: float = 0.0) -> float:
        t = start
        for ch in text:
            self.wedge.key(ch, t)
            t += gap_ms / 1000
        return t


def test_a_scanner_typing_fast_and_ending_in_enter_is_a_scan():
    w = Wedge()
    end = w.type("6901234567892\r", gap_ms=8)
    w.wedge.tick(end + 1)
    assert [s.text for s in w.scans] == ["6901234567892"] and w.typed == []
    assert w.scans[0].source == "wedge"


def test_a_person_typing_is_passed_through_as_typing():
    w = Wedge()
    end = w.type("13800138000\r", gap_ms=150)
    w.wedge.tick(end + 1)
    assert w.scans == [] and "".join(w.typed) == "13800138000\r"


def test_keys_are_released_as_typing_once_the_gap_shows_a_person():
    w = Wedge()
    w.wedge.key("1", 0.0)
    w.wedge.tick(0.1)
    assert w.typed == []  # held back until the timing decides
    w.wedge.tick(0.2)
    assert w.typed == ["1"]


def test_a_short_fast_burst_is_typing_not_a_scan():
    w = Wedge(min_length=6)
    end = w.type("12\r", gap_ms=5)  # a person's key rollover
    w.wedge.tick(end + 1)
    assert w.scans == [] and "".join(w.typed) == "12\r"


def test_a_short_burst_of_escape_codes_is_refused_not_typed():
    w = Wedge(min_length=6)
    end = w.type("\x1b[2J\r", gap_ms=2)
    w.wedge.tick(end + 1)
    assert w.typed == [] and w.scans == []
    assert [r.refusal.code for r in w.rejected] == ["escape_character"]


def test_a_ui_stall_in_the_middle_of_a_scan_does_not_split_it():
    w = Wedge()
    t = w.type("69012", gap_ms=5)
    w.type("34567892\r", gap_ms=5, start=t + 0.09)  # the UI thread was busy for 90 ms
    w.wedge.tick(t + 1)
    assert [s.text for s in w.scans] == ["6901234567892"] and w.typed == []


def test_an_enter_arriving_a_little_late_still_ends_the_scan():
    w = Wedge()
    t = w.type("6901234567892", gap_ms=5)
    w.wedge.key("\r", t + 0.06)
    assert [s.text for s in w.scans] == ["6901234567892"] and w.rejected == []


def test_a_fast_burst_without_enter_is_refused_never_typed():
    w = Wedge()
    end = w.type("6901234567892", gap_ms=5)
    w.wedge.tick(end + 1)
    assert w.scans == [] and w.typed == []
    assert [r.refusal.code for r in w.rejected] == ["no_suffix"]


def test_garbage_from_a_wedge_is_refused_with_a_reason():
    w = Wedge()
    w.type("\x1b[31mhello\r", gap_ms=5)
    assert w.scans == [] and w.typed == []
    assert w.rejected[0].refusal.code == "escape_character"


def test_a_wedge_flooding_garbage_is_rate_limited_and_never_typed():
    w = Wedge()
    t = 0.0
    for _ in range(500):  # 3,500 keys in 0.35 s
        t = w.type("\x07\x07\x07\x07\x07\x07\r", gap_ms=0.1, start=t)
    assert w.typed == [] and w.scans == []
    assert len(w.rejected) == 5  # one second's allowance reported
    assert w.wedge.outlet.rejections == 500  # every one counted
    end = w.type("6901234567892\r", gap_ms=8, start=t + 2)  # and a real scan still works
    w.wedge.tick(end + 1)
    assert [s.text for s in w.scans] == ["6901234567892"]


def test_an_endless_fast_stream_is_cut_off():
    w = Wedge(max_length=64)
    w.type("1" * 500, gap_ms=1)
    assert w.typed == [] and w.rejected and w.rejected[0].refusal.code == "too_long"
