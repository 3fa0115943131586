"""Reading the project's OpenAPI contracts (docs/*.yaml) in tests: the whole document is
validated with openapi-spec-validator, and a body is checked against one schema of it with
openapi-schema-validator in the document's own dialect (3.0: ``nullable``; 3.1: JSON
Schema 2020-12; both ``$ref`` into ``components`` and ``format``), the same rules a
client generator or gateway framework would apply."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

DOCS = Path(__file__).resolve().parents[1] / "docs"


@cache
def spec(name: str) -> dict[str, Any]:
    """The parsed contract ``docs/<name>`` (YAML). Raises OSError, yaml.YAMLError."""
    return dict(yaml.safe_load((DOCS / name).read_text(encoding="utf-8")))


def operation(name: str, method: str, path: str) -> dict[str, Any]:
    """One operation of the contract, e.g. ``operation(g, "post", "/v1/orders")``.
    Raises KeyError if the contract has no such operation."""
    return dict(spec(name)["paths"][path][method.lower()])


def request_schema(name: str, method: str, path: str) -> dict[str, Any]:
    """The JSON request body's schema of an operation. KeyError if it has none."""
    return dict(operation(name, method, path)["requestBody"]["content"]["application/json"]
                ["schema"])


def response_schema(name: str, method: str, path: str, status: int) -> dict[str, Any] | None:
    """The JSON body's schema for ``status`` (or the operation's ``default``); None when the
    response is documented without a body. KeyError when the status is not documented at all:
    a status the contract does not name is a contract violation."""
    responses = operation(name, method, path)["responses"]
    response = responses.get(str(status), responses.get("default"))
    if response is None:
        raise KeyError(f"{method.upper()} {path} does not document status {status}")
    response = resolve(name, response)
    content = response.get("content", {}).get("application/json")
    return None if content is None else dict(content["schema"])


def resolve(name: str, node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (``#/components/...``) once; other nodes are returned as is."""
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = spec(name)
    for part in ref.removeprefix("#/").split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return dict(target)


def check(name: str, instance: Any, schema: dict[str, Any]) -> None:
    """Validate ``instance`` against ``schema`` of contract ``name`` (OpenAPI 3.0 rules).
    Raises jsonschema.ValidationError naming what is wrong."""
    from openapi_schema_validator import (
        OAS30Validator,
        OAS31Validator,
        oas30_format_checker,
        oas31_format_checker,
    )

    rooted = dict(schema, components=spec(name).get("components", {}))
    if str(spec(name).get("openapi", "")).startswith("3.1"):
        # A 3.1 document's schemas are JSON Schema 2020-12 (``type: [string, "null"]``).
        OAS31Validator(rooted, format_checker=oas31_format_checker).validate(instance)
    else:
        OAS30Validator(rooted, format_checker=oas30_format_checker).validate(instance)
