"""``python -m tributary_openmetadata ARGS``: runs the wheel's Tributary binary (e.g. ``metadata extract -c FILE``)."""

import os
import sys

from tributary_openmetadata.binary import tributary_binary

if __name__ == "__main__":
    binary = tributary_binary()
    os.execv(binary, [binary, *sys.argv[1:]])
