"""Paintstep's Krita plugin.

Krita's API is touched only in `document.py` (and the docker's glue in `docker.py`); the rest
sees plain bytes and numbers and runs without Krita. Named `paintstep_krita` so that it can
never shadow the `paintstep` library.
"""

try:
    from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita
except ImportError:  # imported outside Krita (tests): nothing to register
    Krita = None

if Krita is not None:
    from .docker import PaintstepDocker

    Krita.instance().addDockWidgetFactory(
        DockWidgetFactory("paintstep_docker", DockWidgetFactoryBase.DockRight, PaintstepDocker)
    )

    import os

    if os.environ.get("PAINTSTEP_SELFTEST"):
        from . import selftest

        selftest.arm()
