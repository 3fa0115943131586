"""Every string the screens show, in Chinese and English (keys are stable ids)."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "zh": {
        "welcome": "欢迎使用自助扫码购",
        "prompt": "请扫描会员码，或点击“开始购物”",
        "start": "开始购物",
        "call_staff": "呼叫店员",
        "other_language": "English",
        "lane": "收银通道",
    },
    "en": {
        "welcome": "Welcome to Scan & Go",
        "prompt": "Scan your member code or tap Start",
        "start": "Start",
        "call_staff": "Call staff",
        "other_language": "中文",
        "lane": "Lane",
    },
}
