"""The public API (``pytest_perfgate``): one mapping gives ``__all__``, ``__getattr__`` and
``__dir__``; what type checkers see agrees with it; every error and warning is in ``errors.py``
and exported; the platform is stated."""

from __future__ import annotations

import ast
import builtins
import inspect
import os
import warnings
from pathlib import Path

import pytest

import pytest_perfgate
from pytest_perfgate import errors

SRC = Path(pytest_perfgate.__file__).parent
ROOT = SRC.parent.parent


def _type_checking_imports() -> dict[str, str]:
    """name -> submodule of the ``from .x import Name as Name`` lines type checkers see."""
    tree = ast.parse((SRC / "__init__.py").read_text(encoding="utf-8"))
    seen: dict[str, str] = {}
    for block in (node for node in tree.body if isinstance(node, ast.If)):
        for node in block.orelse:
            assert isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
            for alias in node.names:
                assert alias.asname == alias.name, f"{alias.name}: 'X as X' marks an explicit re-export"
                seen[alias.name] = node.module
    return seen


def test_what_type_checkers_see_is_the_mapping() -> None:
    assert _type_checking_imports() == pytest_perfgate._EXPORTS


def test_all_getattr_and_dir_come_from_the_mapping() -> None:
    assert pytest_perfgate.__all__ == ["__version__", *pytest_perfgate._EXPORTS]
    assert set(pytest_perfgate.__all__) <= set(dir(pytest_perfgate))
    for name, module in pytest_perfgate._EXPORTS.items():
        value = getattr(pytest_perfgate, name)
        assert value.__module__ == f"pytest_perfgate.{module}", name
    with pytest.raises(AttributeError, match="module 'pytest_perfgate' has no attribute 'nothing'"):
        pytest_perfgate.nothing  # type: ignore[attr-defined]  # noqa: B018


def _exception_classes(module: object) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == errors.__name__
    }


def test_every_error_and_warning_is_exported() -> None:
    defined = _exception_classes(errors)
    exported = {name for name, module in pytest_perfgate._EXPORTS.items() if module == "errors"}
    assert defined == exported
    assert all(issubclass(getattr(errors, name), errors.PerfgateError) for name in defined)


#: names of the error and warning classes of the stdlib and errors.py: a class deriving from one is
#: an error (a BaseException only, such as load.runner's Terminated(KeyboardInterrupt), is control flow)
_EXCEPTION_BASES = {
    name for name, value in vars(builtins).items() if inspect.isclass(value) and issubclass(value, Exception)
} | _exception_classes(errors)


def test_no_public_error_or_warning_is_defined_outside_errors_py() -> None:
    """Private control-flow exceptions (``_Failed``, ``_Aborted``) may stay where they are used."""
    outside = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {
                    b.id if isinstance(b, ast.Name) else b.attr
                    for b in node.bases
                    if isinstance(b, (ast.Name, ast.Attribute))
                }
                if bases & _EXCEPTION_BASES:
                    outside.append(f"{path.relative_to(SRC)}: {node.name}")
    assert outside == []


def test_warnings_are_in_the_hierarchy_and_still_user_warnings() -> None:
    for warning in (errors.PerfBudgetWarning, errors.MongoQueryWarning):
        assert issubclass(warning, errors.PerfgateWarning) and issubclass(warning, UserWarning)
    assert issubclass(errors.PerfgateWarning, errors.PerfgateError) and issubclass(errors.PerfgateWarning, Warning)
    with warnings.catch_warnings(), pytest.raises(errors.PerfgateError, match="perf budget: median"):
        warnings.simplefilter("error", errors.PerfgateWarning)
        warnings.warn(errors.PerfBudgetWarning("perf budget: median"), stacklevel=1)


def test_race_failure_is_an_assertion_failure_with_its_report() -> None:
    failure = errors.RaceFailure("lost update", report={"schedule": 3})
    assert isinstance(failure, AssertionError) and isinstance(failure, errors.PerfgateError)
    assert str(failure) == "lost update" and failure.report == {"schedule": 3}


def test_errors_keep_their_fields() -> None:
    gitlab = errors.GitLabError("502 from GitLab", status=502, transient=True)
    assert (str(gitlab), gitlab.status, gitlab.transient) == ("502 from GitLab", 502, True)
    round_failed = errors.RoundFailed("base", "ZeroDivisionError", "round 3")
    assert str(round_failed) == "ZeroDivisionError (in round 3, after a first call that passed)"
    assert round_failed.side == "base"
    assert issubclass(errors.ChannelClosed, errors.AbError) and issubclass(errors.ChannelTimeout, errors.AbError)


def test_require_posix_names_the_feature_and_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    assert errors.require_posix("perfgate ab") is None  # the tests run on Linux or macOS
    monkeypatch.setattr(os, "name", "nt")
    monkeypatch.setattr(errors.sys, "platform", "win32")
    with pytest.raises(errors.PlatformError) as info:
        errors.require_posix("perfgate ab")
    assert str(info.value) == (
        "perfgate ab needs a POSIX system (Linux or macOS): it runs its processes in their own process group "
        "and stops them with signals; this is 'win32'"
    )


def test_pyproject_states_the_platform_and_the_python_versions() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    classifiers = project["classifiers"]
    assert {"Operating System :: POSIX :: Linux", "Operating System :: MacOS"} <= set(classifiers)
    assert not any("Windows" in c or "OS Independent" in c for c in classifiers)
    versions = [c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")]
    assert project["requires-python"] == f">={versions[0]}"
    assert "stats" not in project["optional-dependencies"]  # nothing imports numpy or scipy


def test_one_filter_turns_every_perfgate_warning_into_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.perf_budget(median=("1ns", "10s"))
        def test_warns(perf):
            perf(sum, range(10))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "error::pytest_perfgate.PerfgateWarning")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*PerfBudgetWarning: perf budget: median*"])
