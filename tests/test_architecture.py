"""Layering facts of the code base, checked by reading the source (ast), not by importing it.

- ``whatsapp/`` is the Cloud API protocol only: it imports nothing of the project;
- ``gateway/`` runs without Rasa: it imports neither rasa nor sanic, nor the Rasa side
  (``connectors/``), and a gateway process loads none of them; ``connectors/whatsapp/`` is
  the Rasa side only;
- ``clinic/`` (the domain) imports no process (gateway, connectors, web apps);
- no import cycles between the project's modules (imports inside functions count: they
  hide a cycle from the interpreter, not from a reader);
- no private name (``_name``) of one module used by another, neither imported nor reached
  through an object;
- one clock: ``clinic/clock.py`` is the only ``utcnow``, and nobody calls the naive
  ``datetime.utcnow()``.
(The gateway's own secret for its turn calls is checked end to end in
test_whatsapp_ingress_e2e.py: a turn signed with Meta's app secret is refused.)
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("actions", "addons", "benchmarks", "clinic", "clinic_api", "connectors", "gateway", "inbox",
            "simulator", "scripts", "whatsapp")

@lru_cache(maxsize=None)
def modules() -> Dict[str, Path]:
    found: Dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


@lru_cache(maxsize=None)
def tree(module: str) -> ast.Module:
    return ast.parse(modules()[module].read_text(encoding="utf-8"))


def _type_checking_nodes(module_tree: ast.Module) -> Set[int]:
    skipped: Set[int] = set()
    for node in ast.walk(module_tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    return skipped


def imports(module: str) -> Iterator[Tuple[str, Optional[str], int]]:
    """(imported module, imported name or None, line) for every import of ``module``,
    wherever it is (top level or in a function), except under ``if TYPE_CHECKING``."""
    module_tree = tree(module)
    skipped = _type_checking_nodes(module_tree)
    is_package = modules()[module].name == "__init__.py"
    for node in ast.walk(module_tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                yield base, alias.name, node.lineno


def project_target(base: str, name: Optional[str]) -> Optional[str]:
    """The project module an import loads (``from pkg import submodule`` loads the
    submodule), or None for anything outside the project."""
    known = modules()
    if name and f"{base}.{name}" in known:
        return f"{base}.{name}"
    while base and base not in known:
        base = base.rpartition(".")[0]
    return base or None


def graph() -> Dict[str, Set[str]]:
    edges: Dict[str, Set[str]] = {}
    for module in modules():
        edges[module] = set()
        for base, name, _line in imports(module):
            target = project_target(base, name)
            if target and target != module:
                edges[module].add(target)
    return edges


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# ── the rules ─────────────────────────────────────────────────────────────────────────────
def test_the_scan_sees_the_project():
    assert {"whatsapp.inbound", "gateway.outbox", "gateway.door", "gateway.relay", "gateway.render",
            "clinic.messaging.store", "inbox.app"} <= set(modules())
    assert "clinic.messaging.store" in graph()["gateway.outbox"]


def test_whatsapp_imports_nothing_of_the_project():
    offending = [f"{module}:{line} imports {base}"
                 for module in modules() if in_package(module, "whatsapp")
                 for base, name, line in imports(module)
                 if (target := project_target(base, name)) and not in_package(target, "whatsapp")]
    assert not offending, "whatsapp/ is the Cloud API protocol only:\n" + "\n".join(offending)


def test_the_gateway_runs_without_rasa():
    forbidden = ("rasa", "sanic", "rasa_sdk")
    offending = [f"{module}:{line} imports {base}"
                 for module in modules() if in_package(module, "gateway")
                 for base, name, line in imports(module)
                 if base.split(".")[0] in forbidden
                 or ((target := project_target(base, name)) and in_package(target, "connectors"))]
    assert not offending, "gateway/ must run without Rasa:\n" + "\n".join(offending)


def test_the_gateway_process_loads_no_rasa():
    """Not only its own imports: nothing it imports pulls Rasa, Sanic or TensorFlow in."""
    probe = ("import sys, gateway.server, gateway.__main__; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'rasa', 'rasa_sdk', 'sanic', 'tensorflow', 'connectors'}))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_connectors_whatsapp_is_the_rasa_side_only():
    """The /turn endpoint and the Rasa-only development channel, its output channel, the
    paused-conversation safety net: everything else WhatsApp needs is in gateway/."""
    assert {m for m in modules() if in_package(m, "connectors.whatsapp")} == {
        "connectors.whatsapp", "connectors.whatsapp.channel", "connectors.whatsapp.output",
        "connectors.whatsapp.safety_net"}


def test_the_clinic_domain_depends_on_no_process():
    """clinic/ is the domain: the protocol (whatsapp/) is below it; the gateway, the Rasa
    side and the web apps are above it. (The broadcast and survey commands enqueue into the
    outbox through clinic/messaging/outbox_queue.py: no sender of their own.)"""
    above = ("gateway", "connectors", "inbox", "clinic_api", "actions", "addons", "simulator")
    offending = [f"{module}:{line} imports {target}"
                 for module in modules() if in_package(module, "clinic")
                 for base, name, line in imports(module)
                 if (target := project_target(base, name)) and target.split(".")[0] in above]
    assert not offending, "\n".join(offending)


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles:\n" + "\n".join(" ↔ ".join(component) for component in found)


def test_no_private_name_is_imported_from_another_module():
    offending = [f"{module}:{line} from {base} import {name}"
                 for module in modules()
                 for base, name, line in imports(module)
                 if name and name.startswith("_") and not name.startswith("__")
                 and project_target(base, None)]
    assert not offending, "\n".join(offending)


def _bound_names(module_tree: ast.Module) -> Tuple[Set[str], Set[str]]:
    """Names the module defines itself, and names bound to modules outside the project."""
    defined: Set[str] = set()
    foreign: Set[str] = set()
    for node in ast.walk(module_tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.keyword) and node.arg:
            defined.add(node.arg)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in PACKAGES:
                    foreign.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] not in PACKAGES:
            foreign.update(alias.asname or alias.name for alias in node.names)
    return defined, foreign


# Private attributes of Python's own types that are their public API.
PUBLIC_UNDERSCORED = {"_replace", "_asdict", "_fields", "_make", "_exit"}


def test_no_private_attribute_of_another_module_is_used():
    """``obj._name`` where neither ``self``/``cls`` nor the module itself defines ``_name``:
    a private of some other module's class (``store._sessions``, ``inbox._sessions``)."""
    offending = []
    for module in modules():
        module_tree = tree(module)
        defined, foreign = _bound_names(module_tree)
        for node in ast.walk(module_tree):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                continue
            owner = ast.unparse(node.value)
            if owner in ("self", "cls") or owner.split(".")[0] in foreign:
                continue
            if node.attr in defined or node.attr in PUBLIC_UNDERSCORED:
                continue
            offending.append(f"{module}:{node.lineno} {owner}.{node.attr}")
    assert not offending, "\n".join(offending)


def _is_utcnow_copy(node: ast.AST) -> bool:
    """``def utcnow()`` / ``_utcnow()`` / any argument-less function that only returns
    ``datetime.now(timezone.utc)``."""
    if not isinstance(node, ast.FunctionDef) or node.args.args:
        return False
    if node.name in ("utcnow", "_utcnow"):
        return True
    body = [statement for statement in node.body
            if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))]
    return (len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value is not None
            and re.fullmatch(r"(dt\.)?datetime\.now\((dt\.)?timezone\.utc\)", ast.unparse(body[0].value)) is not None)


def test_one_utcnow():
    defining = [f"{module}:{node.lineno}" for module in modules()
                if module != "clinic.clock"
                for node in ast.walk(tree(module)) if _is_utcnow_copy(node)]
    assert not defining, f"use clinic.clock.utcnow instead of a copy: {defining}"
    naive = [f"{module}:{node.lineno}" for module in modules() for node in ast.walk(tree(module))
             if isinstance(node, ast.Attribute) and node.attr == "utcnow"
             and ast.unparse(node.value).endswith("datetime")]
    assert not naive, f"datetime.utcnow() is naive; use clinic.clock.utcnow: {naive}"


def test_one_module_names_the_send_endpoint_and_one_calls_it():
    """Only whatsapp/client.py knows Meta's ``/messages`` endpoint, and only the gateway's
    sender (gateway/sender.py: PHI guard, 24-hour window, the wa_outbound record) calls the
    client's ``send``: every message the clinic sends passes there."""
    def builds_messages_url(node: ast.AST) -> bool:
        # A string in code (not a docstring) ending in /messages, not the simulator's /_sim/...
        if isinstance(node, ast.JoinedStr):
            text = "".join(part.value for part in node.values if isinstance(part, ast.Constant))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "\n" not in node.value:
            text = node.value
        else:
            return False
        return text.rstrip("'\"").endswith("/messages") and "/_sim/" not in text

    def strings(module_tree: ast.Module) -> Iterator[ast.AST]:
        parts = {id(part) for node in ast.walk(module_tree) if isinstance(node, ast.JoinedStr)
                 for part in node.values}
        return (node for node in ast.walk(module_tree) if id(node) not in parts)

    endpoint = sorted({module for module in modules() if not in_package(module, "simulator")
                       for node in strings(tree(module)) if builds_messages_url(node)})
    assert endpoint == ["whatsapp.client"], endpoint
    callers = sorted({module for module in modules() if not in_package(module, "simulator")
                      for node in ast.walk(tree(module))
                      if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                      and node.func.attr == "send" and ast.unparse(node.func.value).endswith("client")})
    assert callers == ["gateway.sender"], callers


def test_one_process_owns_the_graph_client_and_every_other_sender_enqueues():
    """Issue 14: the number's one rate limit holds whatever runs at once because only the
    process that owns the outbox (gateway/door.py: the gateway, or Rasa's channel in the
    Rasa-only development mode, which is a Door) builds a Graph client and a sender; the staff
    inbox, reminders and notifications (Rasa's proactive messages), surveys and broadcasts
    put their messages into the outbox's queue (clinic/messaging/outbox_queue.py). The
    benchmarks' own sender measures the simulator and is no part of the clinic."""
    def builds(module_tree: ast.Module, name: str) -> bool:
        return any(isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == name
                   for node in ast.walk(module_tree))

    clinic_side = [module for module in modules()
                   if not in_package(module, "simulator") and not in_package(module, "benchmarks")]
    assert sorted(m for m in clinic_side if builds(tree(m), "GraphClient")) == ["gateway.door"]
    assert sorted(m for m in clinic_side if builds(tree(m), "Sender")) == ["gateway.door"]
    queued_by = {m for m in clinic_side if builds(tree(m), "OutboxQueue")}
    assert {"inbox.whatsapp_gateway", "connectors.whatsapp.channel", "clinic.broadcasts.__main__"} <= queued_by


def _reads_environment(node: ast.AST) -> bool:
    """``os.environ`` / ``os.getenv`` (a read of the process's environment)."""
    return (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
            and isinstance(node.value, ast.Name) and node.value.id == "os")


@pytest.mark.parametrize("package, place", [
    ("whatsapp", None),  # told everything by its caller
    ("gateway", "gateway.settings"),
    ("inbox", "inbox.settings"),
    ("clinic_api", "clinic_api.settings"),
])
def test_each_process_package_reads_its_settings_in_one_place(package, place):
    readers = sorted({module for module in modules() if in_package(module, package)
                      if any(_reads_environment(node) for node in ast.walk(tree(module)))})
    assert readers == ([place] if place else []), readers


def test_a_turn_crosses_every_boundary_in_one_format():
    """The door's journal, the inbox store, the relay and Rasa's /turn endpoint all use
    clinic/messaging/turn.py, and nobody builds a turn's fields by hand any more."""
    users = {module for module in modules() for base, _name, _line in imports(module)
             if base == "clinic.messaging.turn"}
    assert {"gateway.door", "gateway.relay", "gateway.render", "clinic.messaging.store",
            "connectors.whatsapp.channel"} <= users, sorted(users)
    hand_built = [f"{module}:{node.lineno}" for module in modules() if module != "clinic.messaging.turn"
                  for node in ast.walk(tree(module))
                  if isinstance(node, ast.Dict) and {"wamid", "conversation_id", "kind"} <= {
                      k.value for k in node.keys if isinstance(k, ast.Constant)}]
    assert not hand_built, f"a turn built as a dict outside clinic/messaging/turn.py: {hand_built}"
