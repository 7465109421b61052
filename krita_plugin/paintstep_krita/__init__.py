"""Paintstep's Krita plugin.

Krita's API is touched only in `document.py` (documents and layers) and `app.py` (the rest);
the other modules see plain bytes and numbers and run without Krita. Named `paintstep_krita`
so that it can never shadow the `paintstep` library.
"""

import os

try:
    from . import app
except ImportError:  # imported outside Krita (tests): nothing to register
    app = None

if app is not None:
    from .docker import PaintstepDocker

    app.add_docker("paintstep_docker", PaintstepDocker)

    if os.environ.get("PAINTSTEP_SELFTEST"):
        from . import selftest

        selftest.arm()
