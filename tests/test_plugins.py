"""Plugin manager and registries: built-ins come from entry points, third parties register the same way."""

from __future__ import annotations

import importlib
import inspect
import itertools
import logging
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ddbench import DistilledSet, Distiller, hookimpl, hookspecs
from ddbench.cli import main
from ddbench.errors import DDBenchError, PluginError, UnknownNameError
from ddbench.plugins import SELECT_ENV, registries


class Mirror(Distiller):
    """A third-party method defined inline: the first ipc images of each class, flipped."""

    name = "mirror"
    description = "test plugin"

    def distill(self, train, ipc, seed):  # type: ignore[no-untyped-def]
        idx = torch.cat([i[:ipc] for i in train.class_indices()])
        return DistilledSet(train.images[idx].flip(3), train.labels[idx])


class MirrorPlugin:
    @hookimpl
    def ddbench_register_methods(self, register):  # type: ignore[no-untyped-def]
        register(Mirror)


def test_builtins_register_through_entry_points() -> None:
    regs = registries()
    assert "random" in regs.methods and regs.methods.entry("random").plugin == "random"
    assert {"mnist", "fashion-mnist", "cifar10", "digits"} <= set(regs.datasets.names())
    assert {"convnet3", "resnet10", "resnet18", "alexnet", "vgg11"} <= set(regs.networks.names())
    assert regs.evaluators.names() == ["standard"]
    plugins = {p.name: p for p in regs.plugins()}
    assert plugins["random"].dist.startswith("ddbench ") and not plugins["random"].problem


def test_no_entry_points_means_empty_registries() -> None:
    regs = registries(entry_points=False)
    assert len(regs.methods) == 0 and len(regs.networks) == 0


def test_third_party_plugin_registered_inline() -> None:
    regs = registries(extra=[MirrorPlugin()])
    assert regs.methods.get("mirror") is Mirror
    assert regs.methods.entry("mirror").plugin != "random"


def test_each_build_is_fresh() -> None:
    registries(extra=[MirrorPlugin()])
    assert "mirror" not in registries().methods


def test_duplicate_name_names_both_plugins() -> None:
    class Dup:
        @hookimpl
        def ddbench_register_methods(self, register):  # type: ignore[no-untyped-def]
            class R(Mirror):
                name = "random"
            register(R)

    with pytest.raises(DDBenchError, match=r"conflicting plugins found for method 'random': .*'random'"):
        registries(extra=[Dup()])


def test_unknown_name_suggests() -> None:
    regs = registries()
    with pytest.raises(UnknownNameError, match=r"unknown method 'randon': did you mean 'random'\?.*available: "):
        regs.methods.get("randon")


def test_misspelled_hook_fails_loudly() -> None:
    class Typo:
        @hookimpl
        def ddbench_register_method(self, register):  # type: ignore[no-untyped-def]
            pass

    with pytest.raises(DDBenchError, match="unknown hook"):
        registries(extra=[Typo()])


def test_hookimpl_may_take_subset_of_arguments() -> None:
    calls = []

    class NoArgs:
        @hookimpl
        def ddbench_register_methods(self):  # type: ignore[no-untyped-def]
            calls.append("called without register")

    regs = registries(extra=[NoArgs()])
    assert calls == ["called without register"]  # called, with none of the arguments it does not name
    assert "random" in regs.methods


HOOK_NAMES = sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("ddbench_"))
KINDS = ("methods", "datasets", "networks", "evaluators")  # the registries, each filled by ddbench_register_<kind>


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_is_documented_and_fills_its_registry(hook: str) -> None:
    """datasette's rule, checked by calling: every hookspec has a docstring, and what a plugin registers through it
    lands in its registry and no other."""
    assert sorted(f"ddbench_register_{k}" for k in KINDS) == HOOK_NAMES  # a new hook needs a registry here
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), hook
    kind = hook.removeprefix("ddbench_register_")
    obj = types.SimpleNamespace(name=f"fake-{kind}")
    plugin = type("OneHook", (), {hook: hookimpl(lambda self, register: register(obj))})()
    regs = registries(extra=[plugin], entry_points=False)
    assert {k: getattr(regs, k).names() for k in KINDS} == {k: [obj.name] if k == kind else [] for k in KINDS}
    assert getattr(regs, kind).get(obj.name) is obj


# ------------------------------------------------------------------------------------ installed plugins
_count = itertools.count()


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``install(entry_point_name, source)``: a distribution on ``sys.path``, as pip leaves one (a .dist-info
    folder with METADATA and entry_points.txt, and the module its ``ddbench`` entry point names); returns the
    module's name. ``modules`` adds further modules (name suffix -> source) the plugin may point at."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(SELECT_ENV, raising=False)

    def _install(name: str, source: str, modules: dict[str, str] | None = None) -> str:
        mod = f"ddbench_fake_{name.replace('-', '_')}_{next(_count)}"
        (tmp_path / f"{mod}.py").write_text(textwrap.dedent(source).replace("MODULE", mod))
        for suffix, text in (modules or {}).items():
            (tmp_path / f"{mod}_{suffix}.py").write_text(textwrap.dedent(text))
        info = tmp_path / f"{mod}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {mod}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[ddbench]\n{name} = {mod}\n")
        importlib.invalidate_caches()
        return mod

    return _install


BROKEN_ON_IMPORT = "raise RuntimeError('boom at import')\n"
GOOD = """
    from ddbench import Lazy, hookimpl

    @hookimpl
    def ddbench_register_methods(register):
        register(Lazy("fake-good", "MODULE_method:Method"))
"""
GOOD_METHOD = """
    from ddbench import Distiller

    class Method(Distiller):
        name = "fake-good"
        description = "a method imported only when used"
"""


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_plugin_that_raises_on_import_is_skipped_with_one_warning(install, caplog) -> None:  # type: ignore[no-untyped-def]
    install("fake-broken", BROKEN_ON_IMPORT)
    regs = registries()  # before: DDBenchError "a ddbench plugin failed to load", for every command
    assert "random" in regs.methods and "mnist" in regs.datasets
    info = {p.name: p for p in regs.plugins()}["fake-broken"]
    assert info.broken and "RuntimeError: boom at import" in info.problem and info.dist.endswith(" 0.1")
    (warning,) = [w for w in _warnings(caplog) if "fake-broken" in w]
    assert "\n" not in warning and "boom at import" in warning and SELECT_ENV in warning


def test_a_plugin_whose_hook_raises_is_skipped_whole(install, caplog) -> None:  # type: ignore[no-untyped-def]
    install("fake-hook", """
        import types
        from ddbench import hookimpl

        @hookimpl
        def ddbench_register_datasets(register):
            register(types.SimpleNamespace(name="fake-dataset"))

        @hookimpl
        def ddbench_register_methods(register):
            raise ValueError("bad hook")
    """)
    regs = registries()
    assert "fake-dataset" not in regs.datasets and "random" in regs.methods  # nothing of it, all of the rest
    assert "ddbench_register_methods raised ValueError: bad hook" in {p.name: p for p in regs.plugins()}["fake-hook"].problem
    assert len([w for w in _warnings(caplog) if "fake-hook" in w]) == 1


def test_a_plugin_with_a_hook_ddbench_does_not_know_is_skipped(install) -> None:  # type: ignore[no-untyped-def]
    install("fake-newer", """
        from ddbench import hookimpl

        @hookimpl
        def ddbench_register_samplers(register):
            pass
    """)
    regs = registries()
    assert "random" in regs.methods
    assert "does not know" in {p.name: p for p in regs.plugins()}["fake-newer"].problem


def test_ddbench_plugins_reports_a_broken_plugin_in_one_line_and_other_commands_skip_it(install) -> None:  # type: ignore[no-untyped-def]
    install("fake-broken", BROKEN_ON_IMPORT)
    r = CliRunner().invoke(main, ["plugins"])
    assert r.exit_code == 1, r.output
    lines = [line for line in r.stdout.splitlines() if "boom at import" in line]
    assert len(lines) == 1 and lines[0].startswith("broken: plugin 'fake-broken'") and "fix or uninstall" in lines[0]
    assert "boom" not in r.stderr  # said once, on stdout
    r = CliRunner().invoke(main, ["list", "methods"])
    assert r.exit_code == 0 and "random" in r.stdout
    assert [line for line in r.stderr.splitlines() if "boom" in line] != []  # the one-line warning, on stderr


def test_methods_are_imported_when_first_used(install) -> None:  # type: ignore[no-untyped-def]
    mod = install("fake-good", GOOD, {"method": GOOD_METHOD})
    regs = registries()
    assert "fake-good" in regs.methods.names() and f"{mod}_method" not in sys.modules
    assert regs.methods.get("fake-good").description == "a method imported only when used"
    assert f"{mod}_method" in sys.modules


def test_a_method_module_that_fails_to_import_fails_where_it_is_used(install) -> None:  # type: ignore[no-untyped-def]
    install("fake-good", GOOD, {"method": BROKEN_ON_IMPORT})
    regs = registries()
    assert regs.methods.get("random").name == "random"
    with pytest.raises(PluginError, match=r"^method 'fake-good' of plugin 'fake-good' failed to import .*_method:Method "
                                          r"\(RuntimeError: boom at import\); fix or uninstall the plugin$"):
        regs.methods.get("fake-good")
    assert "boom" in {p.name: p for p in registries().plugins(load=True)}["fake-good"].problem
    r = CliRunner().invoke(main, ["list", "methods"])  # needs every method's description: the broken one is left out
    assert r.exit_code == 0 and "random" in r.stdout and "fake-good" not in r.stdout
    assert len([line for line in r.stderr.splitlines() if "boom at import" in line]) == 1


def test_a_lazy_name_must_match_the_imported_object(install) -> None:  # type: ignore[no-untyped-def]
    install("fake-good", GOOD.replace('Lazy("fake-good"', 'Lazy("fake-other"'), {"method": GOOD_METHOD})
    with pytest.raises(PluginError, match="whose name is 'fake-good'; make the two names agree"):
        registries().methods.get("fake-other")


def test_the_environment_variable_selects_third_party_plugins(install, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    install("fake-broken", BROKEN_ON_IMPORT)
    install("fake-good", GOOD, {"method": GOOD_METHOD})
    monkeypatch.setenv(SELECT_ENV, "fake-good")
    regs = registries()
    assert {"fake-good", "random", "dm"} <= set(regs.methods.names())  # ddbench's own always load
    assert {p.name: p for p in regs.plugins()}["fake-broken"].problem == f"not selected ({SELECT_ENV})"
    assert not [w for w in _warnings(caplog) if "fake-broken" in w]
    monkeypatch.setenv(SELECT_ENV, "")
    assert "fake-good" not in registries().methods and "random" in registries().methods
    monkeypatch.setenv(SELECT_ENV, "fake-god")
    with pytest.raises(PluginError, match=f"^{SELECT_ENV} names 'fake-god', which is not an installed plugin; "
                                          f"installed: .*fake-good"):
        registries()


def test_builtin_methods_are_imported_only_when_used() -> None:
    """In a fresh interpreter: building the registries imports no method module; using one imports that one."""
    code = ("import sys; from ddbench.plugins import registries; r = registries(); before = set(sys.modules); "
            "r.methods.get('dm'); print(sorted(m for m in sys.modules if m.startswith('ddbench_baselines.'))); "
            "print(sorted(m for m in before if m.startswith('ddbench_baselines.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout.splitlines()
    assert out == ["['ddbench_baselines.dm', 'ddbench_baselines.plugins', 'ddbench_baselines.synset']",
                   "['ddbench_baselines.plugins']"]
