"""Every `kiosk` command and every setting is documented where an integrator looks."""

from __future__ import annotations

import re
from pathlib import Path

import click

from app.cli import main
from app.config import describe

ROOT = Path(__file__).resolve().parents[2]


def command_paths(group: click.Group, prefix: str = "kiosk") -> list[str]:
    paths = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            paths += command_paths(command, path)
        else:
            paths.append(path)
    return paths


def docs_text() -> str:
    texts = [(ROOT / "README.md").read_text(encoding="utf-8")]
    texts += [p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md")]
    return "\n".join(texts)


def documented(path: str, text: str) -> bool:
    """The whole command line appears, or a line naming its group lists the rest of it
    (the README's table writes `kiosk outbox flush` / `dead list` / `dead retry`)."""
    if path in text:
        return True
    parts = path.split()
    group, rest = " ".join(parts[:2]), " ".join(parts[2:])
    pattern = re.compile(rf"(?<![\w-]){re.escape(rest)}(?![\w-])")
    return any(group in line and pattern.search(line.replace("\\|", " ").replace("|", " "))
               for line in text.splitlines())


def test_every_cli_command_is_documented():
    text = docs_text()
    paths = command_paths(main)
    missing = [path for path in paths if not documented(path, text)]
    assert len(paths) > 30
    assert not missing, f"not in README.md or docs/: {missing}"
    assert not documented("kiosk outbox explode", text)  # the check can fail


def test_every_setting_is_in_the_integrator_settings_guide():
    guide = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    missing = [f"{section}.{name}" for section, name, _default, _doc in describe()
               if f"| `{section}.{name}` |" not in guide]
    assert not missing, missing


def test_the_integrator_guide_links_what_it_promises():
    guide = (ROOT / "docs" / "integrator.md").read_text(encoding="utf-8")
    for target in ("settings.md", "scenarios.md", "payments.md", "membership-api.yaml",
                   "staff.md", "scanning.md", "receipts.md"):
        assert f"({target}" in guide, target
        assert (ROOT / "docs" / target).exists(), target


def test_the_docs_count_the_scenarios_that_ship():
    shipped = len(list((ROOT / "seeds" / "scenarios").glob("*.toml")))
    claims = re.findall(r"`seeds/scenarios/` has (\d+)", docs_text())
    assert claims, "the docs no longer say how many scenarios ship"
    assert all(int(n) == shipped for n in claims), (claims, shipped)


def test_the_repository_map_names_where_the_queues_live():
    """The README's map of the repository follows the code: the print queue and the event
    uploader are services (app/services/printing.py, uploads.py), not devices."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## What is in the repository", 1)[1].split("```")[1]
    assert "printing" in block and "uploads" in block
    assert "print queue);" not in block and "(uploader," not in block
