"""The layout: layers checked by import-linter, no import circle, the README's map of the tree."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trainer"
MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py")
    if path.name != "__main__.py"
)
IMPORT_IN_ORDER = """
import importlib, random, sys
modules = sys.argv[2:]
random.Random(int(sys.argv[1])).shuffle(modules)
for name in modules:
    importlib.import_module(name)
"""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_module_imports_first_in_a_fresh_interpreter_in_any_order(seed):
    """A circle that only shows at run time fails here: some module cannot be imported first."""
    done = subprocess.run([sys.executable, "-c", IMPORT_IN_ORDER, str(seed), *MODULES],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_layers_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout and "Layers" in done.stdout


def test_the_readme_names_every_package_and_only_packages_that_exist():
    text = (ROOT / "README.md").read_text()
    section = text.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\s*(\w+)/ ", section, flags=re.M))
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert named == packages
    for path in re.findall(r"`(trainer/[\w/]+\.py)`", section):
        assert (ROOT / path).is_file(), path


def test_no_top_level_module_but_the_entry_points_and_the_optimizer_and_loss_tables():
    modules = {p.name for p in PACKAGE.glob("*.py")}
    assert modules == {"__init__.py", "__main__.py", "optimizers.py", "losses.py"}


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module: each is an import circle."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_tarjan_finds_a_circle_when_there_is_one():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle_between_modules_even_inside_functions():
    import grimp

    graph = grimp.build_graph("trainer", exclude_type_checking_imports=True)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert strongly_connected(edges) == []
