"""The layering of ARCHITECTURE.md, checked on every import in the package (lazy ones inside
functions included): nothing imports upward, and no two parts import each other."""

import ast
from pathlib import Path

import actdb

PACKAGE = Path(actdb.__file__).parent

#: Bottom to top, as in ARCHITECTURE.md. A module may import its own layer or lower ones.
LAYERS = [
    ("errors", "heavy", "version", "options", "progress"),
    ("images",),
    ("models", "store"),  # side by side
    ("index",),
    ("stats", "similarity", "runtime"),
    ("query", "featvis", "viz"),
    ("ingest", "check", "merging", "comparing", "atlas"),
    ("database", "space", "actdb"),  # the face: Database, Space, and actdb.open/merge/...
    ("render",),
    ("cli", "serve", "__main__"),
]
RANK = {part: i for i, names in enumerate(LAYERS) for part in names}
FACE_NAMES = {"open", "merge", "dream", "predict", "embed", "layers"}


def part_of(module: str) -> str:
    """actdb.store.catalog.reads -> store; actdb -> actdb."""
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else "actdb"


def imports() -> list[tuple[str, str]]:
    """(importing part, imported part) for every actdb import in the package."""
    edges = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        here = part_of(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "actdb":
                    targets = ["actdb" if a.name in FACE_NAMES else f"actdb.{a.name}"
                               for a in node.names]
                else:
                    targets = [node.module]
            else:
                continue
            edges += [(here, part_of(t)) for t in targets
                      if t.split(".")[0] == "actdb" and part_of(t) != here]
    return edges


def test_every_part_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    parts.discard("__init__")
    assert parts <= set(RANK), parts - set(RANK)


def test_no_import_runs_upward():
    upward = sorted({(a, b) for a, b in imports() if RANK[b] > RANK[a]})
    assert not upward, f"imports that run upward: {upward}"


def test_no_two_parts_import_each_other():
    edges = set(imports())
    assert not {(a, b) for a, b in edges if (b, a) in edges}


FACE_CLASSES = {"Database", "Space"}


def face_parameters(source: str, where: str = "") -> list[str]:
    """Functions in ``source`` with a parameter that is the face: named ``db`` or annotated
    ``Database`` / ``Space`` (an upward dependency no import shows)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        a = node.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs]:
            ann = arg.annotation
            if isinstance(ann, ast.Constant):  # a string annotation
                names = set(str(ann.value).replace("|", " ").split())
            else:
                names = {n.id for n in ast.walk(ann) if isinstance(n, ast.Name)} if ann else set()
            if arg.arg == "db" or names & FACE_CLASSES:
                found.append(f"{where}{node.name}({arg.arg})")
    return found


def test_no_lower_layer_receives_the_face():
    """Lower layers take what they ask for (a store, a callable), never the face."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if RANK[part_of(module)] < RANK["database"]:
            found += face_parameters(path.read_text(), f"{module}.")
    assert not found


def test_the_face_check_catches_each_way_of_receiving_it():
    source = ("def a(db): pass\n"
              "def b(x: Space): pass\n"
              "def c(*, y: 'Database | None' = None): pass\n"
              "def d(store, lands): pass\n")
    assert face_parameters(source) == ["a(db)", "b(x)", "c(y)"]


def test_configs_and_manifests_take_keywords_only():
    """A config built from adjacent ints (``k, examples, seed``) cannot swap them silently."""
    import dataclasses
    import importlib
    import pkgutil

    found = []
    for mod in pkgutil.walk_packages(actdb.__path__, "actdb."):
        if mod.name.endswith("__main__"):
            continue
        for name, obj in vars(importlib.import_module(mod.name)).items():
            if (dataclasses.is_dataclass(obj) and obj.__module__ == mod.name
                    and name.endswith(("Config", "Spec", "Manifest"))):
                found.append(obj)
    assert len(found) >= 15
    positional = [c.__name__ for c in found
                  if any(not f.kw_only for f in dataclasses.fields(c))]
    assert not positional


def test_no_store_file_name_is_spelled_outside_the_catalogs_files_module():
    """Code (docstrings aside) names the store's files only through ``catalog.files``."""
    from actdb.store.catalog import files

    names = (files.MANIFEST, files.CATALOG, files.INDEX, files.INDEX_INFO, files.WRITER_LOCK,
             files.WRITER_WAITING, ".wal", ".tmp", "part-")
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "store" / "catalog" / "files.py":
            continue
        tree = ast.parse(path.read_text())
        docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        found += [f"{path.relative_to(PACKAGE)}:{n.lineno}: {n.value!r}"
                  for n in ast.walk(tree) if isinstance(n, ast.Constant)
                  and isinstance(n.value, str) and id(n) not in docs
                  and any(name in n.value for name in names)]
    assert not found


def module_imports() -> dict[str, set[str]]:
    """{module: the actdb modules it imports} (lazy imports inside functions included; a
    package's own ``__init__`` re-exports are edges to the package)."""
    graph: dict[str, set[str]] = {}
    names = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        names.add(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names
                           else node.module for a in node.names]
            else:
                continue
            out.update(t for t in targets if t in names and t != module)
    return graph


def test_no_import_circle_between_any_two_modules():
    """Module by module, not part by part: a circle inside a package counts too (the face
    ``actdb/__init__`` and the packages' ``__init__`` re-exports aside)."""
    graph = {m: {t for t in ts if t not in PACKAGES} for m, ts in module_imports().items()
             if m not in PACKAGES}
    circles, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                circles.append(" -> ".join([*path[path.index(t):], t]))
            elif t not in state:
                visit(t, [*path, t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not circles


PACKAGES = {".".join(p.relative_to(PACKAGE.parent).parts[:-1])
            for p in PACKAGE.rglob("__init__.py")}
