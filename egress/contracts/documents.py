"""Reading contract and schema files, file URIs confined to the contracts dir, and RFC 6901 pointers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit

import orjson
import yaml

try:
    import yaml_rs
except ImportError:  # pragma: no cover - a dependency; PyYAML (20x slower on large documents) remains
    yaml_rs = None


class _Loader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """Safe YAML without timestamp conversion: a contract date stays the string it was written as."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in _Loader.yaml_implicit_resolvers.items()
}


class DocumentError(Exception):
    """A file that cannot be read or parsed; the message names no content of the file."""


def read_document(path: Path) -> Any:
    """Parse a JSON or YAML file (by suffix; YAML parsing also accepts JSON)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot read file ({exc.strerror or type(exc).__name__})") from exc
    if path.suffix.lower() == ".json":
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DocumentError(f"invalid JSON: {exc}") from exc
    if yaml_rs is not None:
        return _yaml_rs(raw)
    try:
        return yaml.load(raw, Loader=_Loader)  # noqa: S506 - a safe loader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DocumentError(f"invalid YAML{where}") from exc


_LINE = re.compile(r"at line (\d+)")


def _yaml_rs(raw: bytes) -> Any:
    """YAML through yaml-rs (20x PyYAML on Stripe's 4 MB document, same result there): no
    timestamps, duplicate keys refused; its messages quote the input, so only the line is kept."""
    try:
        return yaml_rs.loads(raw.decode("utf-8"), parse_datetime=False)
    except UnicodeDecodeError as exc:
        raise DocumentError("invalid YAML (not UTF-8)") from exc
    except Exception as exc:  # noqa: BLE001 - YAMLDecodeError, and whatever odd input raises
        text = str(exc)
        line = _LINE.search(text.splitlines()[0] if text else "")
        what = " (duplicate mapping key)" if "duplicate mapping key" in text else ""
        raise DocumentError(f"invalid YAML{f' at line {line.group(1)}' if line else ''}{what}") from exc


def file_uri(path: Path) -> str:
    """The file:// URI of an absolute path (how contracts name their own files)."""
    return path.resolve().as_uri()


def path_of_uri(uri: str) -> Path | None:
    """The local path named by a file:// URI, or None for any other scheme."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parts.path))


def inside(path: Path, root: Path) -> bool:
    """Whether `path`, after resolving symlinks and `..`, stays under `root`."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def escape_token(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(*tokens: str | int) -> str:
    """An RFC 6901 pointer from raw tokens: pointer("paths", "/a") == "/paths/~1a"."""
    return "".join("/" + escape_token(t) for t in tokens)


def join_pointer(base: str, *tokens: str | int) -> str:
    return base + pointer(*tokens)


def split_pointer(ptr: str) -> list[str]:
    if ptr in ("", "#"):
        return []
    if not ptr.startswith("/"):
        raise KeyError(ptr)
    if "~" not in ptr:
        return ptr[1:].split("/")
    return [t.replace("~1", "/").replace("~0", "~") for t in ptr[1:].split("/")]


def resolve_pointer(doc: Any, ptr: str) -> Any:
    """The value at `ptr` in `doc`; KeyError when it does not exist."""
    node = doc
    for token in split_pointer(ptr):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(ptr)
    return node


def fragment_uri(uri: str, ptr: str) -> str:
    """`uri#ptr` with the pointer percent-encoded as a URI fragment."""
    return uri + "#" + quote(ptr, safe="/~-._!$&'()*+,;=:@")


def split_ref(uri: str) -> tuple[str, str]:
    """(document uri, decoded fragment) of an absolute reference."""
    base, frag = urldefrag(uri)
    return base, unquote(frag)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def resolve_uri(base: str, ref: str) -> str:
    """RFC 3986 reference resolution that also works for non-hierarchical bases (`urn:`)."""
    if ref.startswith("#"):
        return urldefrag(base)[0] + ref
    if _SCHEME.match(ref):
        return ref
    return urljoin(base, ref)
