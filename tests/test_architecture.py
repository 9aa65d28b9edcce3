"""The package's shape: an import graph without circles, pure schedules, modules of one screen.

The graph is read from the source with `ast`, so it sees every import, including those
inside functions (which run later, but still tie two rooms together). Imports under
``if TYPE_CHECKING:`` are left out: they never run.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bsi_keras"
MAX_LINES = 400
LONG_MODULE_EXCUSE = "longer than 400 lines because"
FRAMEWORKS = ("keras", "tensorflow", "jax")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST, module: str) -> list[str]:
    """Every dotted name ``module`` imports, anywhere in it.

    ``from a import b`` gives ``a.b`` when that is a module of the package, else ``a``.
    """
    names: list[str] = []
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                name = f"{base}.{alias.name}"
                names.append(name if name in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def parse(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))


def dependencies(module: str) -> set[str]:
    """The package's modules that importing ``module`` (or calling its functions) runs.

    Importing ``a.b`` runs the package ``a`` first, unless ``module`` lives inside ``a``
    (then ``a`` is already being imported).
    """
    found: set[str] = set()
    for name in imported_names(parse(module), module):
        parts = name.split(".")
        if parts[0] != "bsi_keras":
            continue
        if name in MODULES:
            found.add(name)
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in MODULES and not module.startswith(f"{parent}."):
                found.add(parent)
    found.discard(module)
    return found


GRAPH = {module: dependencies(module) for module in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_the_graph_sees_the_imports_it_must():
    # A function-level import, an import of a submodule's name and a package's __init__.
    assert "bsi_keras.runtime.distribution" in GRAPH["bsi_keras.cli.run"]
    assert "bsi_keras.train_step.sam" in GRAPH["bsi_keras.train_step.core"]
    assert "bsi_keras.optimizers" in GRAPH["bsi_keras.train_step.sam"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_schedules_import_no_framework_and_no_other_room():
    schedules = [m for m in MODULES if f"{m}.".startswith("bsi_keras.schedules.")]
    assert schedules
    for module in schedules:
        for name in imported_names(parse(module), module):
            top = name.split(".")[0]
            assert top not in FRAMEWORKS, f"{module} imports {name}"
            if top == "bsi_keras":
                assert f"{name}.".startswith("bsi_keras.schedules."), f"{module} imports {name}"


def test_modules_fit_in_400_lines_or_say_why():
    long = []
    for module, path in MODULES.items():
        lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(parse(module)) or ""
        if lines > MAX_LINES and LONG_MODULE_EXCUSE not in docstring:
            long.append(f"{module}: {lines} lines")
    assert not long, "modules over 400 lines without a reason in their docstring:\n" + "\n".join(
        long
    )
