"""The language surface (alloy.language.core): real functions with signatures and documentation, one for
each construct the frontend compiles (language/simt.py's thread-level ones too), taking the parameters the frontend's implementation takes."""
import inspect

import pytest

import alloy as al
from alloy.frontend.builtins import BUILTINS
from alloy.language import core, simt

NAMES = [n for n in core.BUILTIN_NAMES + simt.SIMT_NAMES if n != "cdiv"]


def test_every_builtin_has_a_frontend_implementation_and_back():
    assert set(core.BUILTIN_NAMES + simt.SIMT_NAMES) == set(BUILTINS)


@pytest.mark.parametrize("name", NAMES)
def test_builtin_is_documented_and_named(name):
    fn = getattr(al, name)
    assert fn.__alloy_builtin__ == name and fn.__name__ == name
    assert fn.__doc__ and len(fn.__doc__.strip()) >= 15, f"al.{name} has no docstring"
    with pytest.raises(RuntimeError, match=rf"al\.{name} can only be called inside an @al\.kernel"):
        fn(1)


def _params(fn, skip_first=False):
    params = list(inspect.signature(fn).parameters.values())[1 if skip_first else 0:]
    return [(p.name if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) else "*", p.kind, p.default)
            for p in params if p.kind != p.VAR_KEYWORD]


@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_the_frontend(name):
    assert _params(getattr(al, name)) == _params(BUILTINS[name], skip_first=True)


def test_help_describes_load():
    assert "mask" in inspect.getdoc(al.load) and str(inspect.signature(al.load)) == "(pointer, mask=None, other=None)"


def test_cdiv_runs_on_the_host():
    assert al.cdiv(1000, 256) == 4
