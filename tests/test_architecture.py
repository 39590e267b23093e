"""The layering of ARCHITECTURE.md, checked on every import in the package (lazy ones inside
functions included): nothing imports upward, and no two parts import each other."""

import ast
from pathlib import Path

import actdb

PACKAGE = Path(actdb.__file__).parent

#: Bottom to top, as in ARCHITECTURE.md. A module may import its own layer or lower ones.
LAYERS = [
    ("errors", "heavy", "version"),
    ("images",),
    ("models",),
    ("store",),
    ("index",),
    ("stats",),
    ("query", "featvis", "viz"),
    ("ingest", "check", "merging", "atlas"),
    ("database", "actdb"),  # the face: Database, and actdb.open/merge/dream/predict/embed
    ("render",),
    ("cli", "serve", "__main__"),
]
RANK = {part: i for i, names in enumerate(LAYERS) for part in names}
FACE_NAMES = {"open", "merge", "dream", "predict", "embed"}


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
