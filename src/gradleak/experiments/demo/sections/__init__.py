"""The demo's sections: every module here registers one with
:func:`gradleak.experiments.demo.base.demo_section` and is imported automatically, so adding a
section is one new module (its ``order`` places it on the page)."""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_info.name}")
