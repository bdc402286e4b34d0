"""Where the Tributary binary is: the one inside this wheel, unless told otherwise."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Mapping


def tributary_binary(options: Mapping[str, str] = {}) -> str:
    """``connectionOptions.tributaryBinary``, else ``$TRIBUTARY_BINARY``, else the wheel's, else ``tributary`` on PATH."""
    for chosen in (options.get("tributaryBinary"), os.environ.get("TRIBUTARY_BINARY")):
        if chosen:
            return chosen
    bundled = Path(__file__).parent / "bin" / "tributary"
    if bundled.is_file():
        return str(bundled)
    found = shutil.which("tributary")
    if found:
        return found
    raise FileNotFoundError("no Tributary binary: this wheel carries none and `tributary` is not on PATH")
