"""How long Krita's UI freezes while the docker sends a big canvas and applies its steps.

    python bench/krita_ui.py [--size 4096] [--steps 32]

Runs Krita's full GUI under xvfb with the plugin (as tests/test_krita_docker.py does) and a
real `paintstep serve`; the plugin's self-test generates from a SIZE x SIZE picture and applies
all steps as layers, while a 10 ms Qt timer measures the longest stretch the event loop did not
turn (the target: no more than a moment). The reference is the same run at 512 px.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "krita")]

import plugin_setup  # noqa: E402
from conftest import photo  # noqa: E402
from PIL import Image  # noqa: E402
from test_server import ServerProcess  # noqa: E402


def run(size: int, steps: int, vendored: Path) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        server = ServerProcess(tmp).start()
        try:
            home = tmp / "home"
            plugin_setup.install(home, vendored)
            picture = tmp / "picture.png"
            big = Image.fromarray(photo("astronaut", 512)).resize((size, size))
            big.save(picture)
            return plugin_setup.run_gui(
                home,
                tmp / "result.json",
                PAINTSTEP_SELFTEST_PICTURE=str(picture),
                PAINTSTEP_SELFTEST_STEPS=str(steps),
                PAINTSTEP_SELFTEST_MEASURE_ONLY="1",
                PAINTSTEP_SERVER=server.address,
            )
        finally:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()
    vendored = plugin_setup.vendor(Path(tempfile.mkdtemp()) / "vendor")
    for size in (512, args.size):
        seen = run(size, args.steps, vendored)
        if "error" in seen:
            print(seen["error"])
            return 1
        print(
            f"{size} px, {args.steps} steps: generate {seen['generate_seconds']:.1f} s, longest "
            f"UI freeze {seen['longest_freeze_generating'] * 1000:.0f} ms; apply all "
            f"{seen['apply_seconds']:.2f} s on the UI thread, longest UI freeze while Krita "
            f"recomposes {seen['longest_freeze_applying'] * 1000:.0f} ms"
        )
        print(
            f"  freezes of 0.2 s or more after pressing apply (at s, for s): "
            f"{seen['freezes_applying']}"
        )
        start, kept = seen["scrub_from_start_seconds"], seen["scrub_from_kept_seconds"]
        print(
            f"  scrubbing through all steps and back: frames from frame 0 {start:.2f} s, from "
            f"kept frames {kept:.2f} s (ratio {kept / start:.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
