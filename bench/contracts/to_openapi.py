"""Regenerate payments.openapi.yaml (OpenAPI 3.0, for Prism) from schemas/*.json (2020-12).

    .venv/bin/python bench/contracts/to_openapi.py

Conversions: ["T", "null"] -> type T + nullable; const -> a one-value enum; $defs ->
components.  Keep enums free of null: Prism 5.14.2 silently stops validating every response
of a document where a `nullable` schema has an enum containing null (found while building
this benchmark).
"""

import json
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def convert(node, refs):
    if isinstance(node, list):
        return [convert(x, refs) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("$schema", "$defs", "title"):
            continue
        if key == "$ref":
            out[key] = refs[value]
        elif key == "const":
            out["enum"] = [value]
        elif key == "type" and isinstance(value, list):
            out["type"] = next(t for t in value if t != "null")
            if "null" in value:
                out["nullable"] = True
        elif key == "properties":
            out[key] = {name: convert(sub, refs) for name, sub in value.items()}
        else:
            out[key] = convert(value, refs)
    if "enum" in out and "type" not in out and all(isinstance(x, str) for x in out["enum"]):
        out["type"] = "string"
    return out


def main() -> None:
    charge = json.loads((HERE / "schemas/charge.json").read_text())
    listing = json.loads((HERE / "schemas/charge_list.json").read_text())
    error = json.loads((HERE / "schemas/error.json").read_text())
    names = {k: k.title().replace("_", "") for k in charge["$defs"]}
    refs = {f"#/$defs/{k}": f"#/components/schemas/{v}" for k, v in names.items()}
    refs["charge.json"] = "#/components/schemas/Charge"
    schemas = {"Charge": convert(charge, refs), "ChargeList": convert(listing, refs), "Error": convert(error, refs)}
    schemas.update({names[k]: convert(v, refs) for k, v in charge["$defs"].items()})

    def responses(ref):
        return {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": ref}}}},
                "4XX": {"description": "client error",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}

    def param(name):
        return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}]

    doc = {"openapi": "3.0.3", "info": {"title": "Benchmark payments provider", "version": "1.0.0"},
           "paths": {"/charges/{id}": {"get": {"operationId": "getCharge", "parameters": param("id"),
                                               "responses": responses("#/components/schemas/Charge")}},
                     "/accounts/{account}/charges": {"get": {
                         "operationId": "listCharges", "parameters": param("account"),
                         "responses": responses("#/components/schemas/ChargeList")}}},
           "components": {"schemas": schemas}}
    head = ("# The benchmark provider's API as OpenAPI 3.0, for Prism (`prism proxy --errors`).\n"
            "# Generated from schemas/*.json by to_openapi.py: edit those, then rerun it.\n")
    (HERE / "payments.openapi.yaml").write_text(head + yaml.safe_dump(doc, sort_keys=False, width=110))


if __name__ == "__main__":
    main()
