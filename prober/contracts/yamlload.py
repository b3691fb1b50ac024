"""A bounded, strict YAML loader for scenario files.

`yaml.safe_load` is safe against code execution, not against files that are merely
hostile or wrong: a 600-byte alias bomb expands to millions of values (and gigabytes),
nesting a few hundred levels deep overflows the recursion of everything that walks the
result, `!!int abc` escapes as a bare ValueError with a traceback, `2026-13-45` is
taken for a date, and a repeated key silently overrides the first. This loader refuses
all of these with one message naming the line, within a fixed budget of time and
memory, before anything else sees the data:

- files above MAX_FILE_BYTES (a ConfigMap holds at most 1 MiB anyway) are refused
  before parsing;
- nesting deeper than MAX_DEPTH levels is refused while composing, and so is a document
  whose aliases (and merge keys, `<<: *base`) would expand to more than MAX_NODES
  values, or an anchor used inside itself, before anything is constructed;
- repeated keys in one mapping are an error (keys brought in by `<<:` may still be
  overridden, which is what merge keys are for);
- only the plain data tags are known (str, int, float, bool, null, seq, map, merge);
  dates stay strings, so `interval: 2026-13-45` later fails as an invalid duration;
  a tagged value that does not parse (`!!int abc`) is an error naming its line.
"""

import os
import stat
from pathlib import Path
from typing import Any, ClassVar

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser, ParserError
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner, ScannerError

try:
    # libyaml's parser: the events of a 1 MiB file in a fraction of a second, where
    # PyYAML's own scanner takes over ten. Composing (where the limits are) stays ours.
    from yaml._yaml import CParser

    _EVENTS: tuple[type, ...] = (CParser,)
    _LIBYAML = True
except ImportError:  # PyYAML built without libyaml: the same loader, slower
    _EVENTS = (Reader, Scanner, Parser)
    _LIBYAML = False

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 500_000

_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_TAG + name for name in ("str", "int", "float", "bool", "null", "seq", "map")}
_MERGE = _TAG + "merge"


class YamlLoadError(Exception):
    """A file that cannot be read as plain YAML data; the message is for humans as-is."""


def load_yaml_file(path: Path) -> Any:
    """Read and parse one YAML document within the limits above, or raise YamlLoadError."""
    return load_yaml(_read(path))


def load_yaml(text: str) -> Any:
    """Parse one YAML document within the limits above, or raise YamlLoadError."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise YamlLoadError(_too_large())
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise YamlLoadError(_describe(exc)) from None
    except yaml.YAMLError as exc:
        raise YamlLoadError(f"YAML syntax error: {exc}") from None
    finally:
        loader.dispose()


def _read(path: Path) -> str:
    try:
        # Before opening: opening a FIFO would wait for a writer.
        if not stat.S_ISREG(path.stat().st_mode):
            raise YamlLoadError("not a regular file")
        with path.open("rb") as file:
            if os.fstat(file.fileno()).st_size > MAX_FILE_BYTES:
                raise YamlLoadError(_too_large())
            data = file.read(MAX_FILE_BYTES + 1)  # the file may grow between stat and read
    except FileNotFoundError:
        raise YamlLoadError("scenario file not found") from None
    except OSError as exc:
        raise YamlLoadError(f"cannot read scenario file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise YamlLoadError(_too_large())
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlLoadError(f"not UTF-8 text (byte {exc.start + 1} of the file)") from None


def _too_large() -> str:
    return f"larger than {MAX_FILE_BYTES // 1024} KiB: a scenario file this big is refused unread"


def _describe(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = ", ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
    syntax = isinstance(exc, ScannerError | ParserError)
    kind = "YAML syntax error" if syntax else "YAML error"
    return f"{kind}{where}: {problem}"


class _StrictLoader(*_EVENTS, Composer, SafeConstructor, Resolver):  # type: ignore[misc]
    """SafeLoader's rules with the limits and refusals described in the module docstring."""

    # Dates stay strings: the scenario schema has no date field, and a timestamp that
    # cannot exist (2026-13-45) would otherwise fail inside the constructor.
    yaml_implicit_resolvers: dict[Any, Any] = {  # noqa: RUF012  (PyYAML reads the class)
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TAG + "timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    yaml_constructors: ClassVar[dict[Any, Any]] = {
        tag: constructor
        for tag, constructor in yaml.SafeLoader.yaml_constructors.items()
        if tag in _PLAIN_TAGS or tag == _MERGE
    }

    def __init__(self, text: str) -> None:
        if _LIBYAML:
            CParser.__init__(self, text)
        else:
            Reader.__init__(self, text)
            Scanner.__init__(self)
            Parser.__init__(self)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0

    # CParser composes in C, without our limits (and recursing on the C stack).
    get_single_node = Composer.get_single_node

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ConstructorError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return self.construct_document(node)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, KeyError, TypeError, OverflowError):
            # `!!int abc`, `!!bool maybe`, `!!float x`: the tag's own parser gave up.
            tag = node.tag.removeprefix(_TAG)
            raise ConstructorError(
                None, None, f"the value is not a valid !!{tag}", node.start_mark
            ) from None

    def construct_undefined(self, node: Node) -> Any:
        tag = node.tag.replace(_TAG, "!!")
        raise ConstructorError(
            None,
            None,
            f"tag {tag} is not supported (plain strings, numbers, lists and maps only)",
            node.start_mark,
        )

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Before merge keys are flattened: only the keys written in this mapping count.
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable: the base constructor says so with its own message
            seen.setdefault(key, key_node.start_mark.line)
            if first is not None:
                raise ConstructorError(
                    None,
                    None,
                    f"key '{key}' appears twice in one mapping (first at line {first + 1}); "
                    "remove one, YAML would silently keep only the last",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep)


_StrictLoader.add_constructor(None, _StrictLoader.construct_undefined)


def _check_expansion(root: Node) -> None:
    """Refuse a document whose aliases expand past MAX_NODES or MAX_DEPTH, or loop.

    Aliases share one composed node, so the walk is memoised by node: it costs the
    number of distinct nodes, while the sizes it adds up are those of the data fully
    expanded (which is what everything after the loader walks).
    """
    # By node: (values it expands to, levels it spans), which do not depend on where
    # an alias puts it; the depth it ends at does, and is checked at every use.
    seen: dict[int, tuple[int, int]] = {}
    active: set[int] = set()

    def refuse(problem: str, node: Node) -> ConstructorError:
        return ConstructorError(None, None, problem, node.start_mark)

    def measure(node: Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in active:
            raise refuse("an anchor is used inside itself (a recursive alias)", node)
        if key not in seen:
            if depth > MAX_DEPTH:
                raise refuse(f"aliases nest deeper than {MAX_DEPTH} levels", node)
            total, height = 1, 1
            if isinstance(node, SequenceNode | MappingNode):
                active.add(key)
                children = (
                    node.value
                    if isinstance(node, SequenceNode)
                    else [child for pair in node.value for child in pair]
                )
                for child in children:
                    size, levels = measure(child, depth + 1)
                    total += size
                    height = max(height, levels + 1)
                    if total > MAX_NODES:
                        raise refuse(
                            f"aliases expand to more than {MAX_NODES:,} values; "
                            "an alias bomb is refused",
                            node,
                        )
                active.discard(key)
            seen[key] = (total, height)
        size, height = seen[key]
        if depth + height - 1 > MAX_DEPTH:
            raise refuse(f"aliases nest deeper than {MAX_DEPTH} levels", node)
        return size, height

    assert isinstance(root, ScalarNode | SequenceNode | MappingNode)
    measure(root, 1)
