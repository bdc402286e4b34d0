"""Marks the wheel as platform-specific: it carries the Tributary binary for one OS and CPU."""

import os
import sysconfig

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class PlatformWheel(BuildHookInterface):
    def initialize(self, version, build_data):
        binary = os.path.join(self.root, "src", "tributary_openmetadata", "bin", "tributary")
        if not os.path.isfile(binary):
            raise RuntimeError(f"{binary} is missing: build the wheel with build-wheel.sh, which puts the binary there")
        build_data["pure_python"] = False
        # Any Python 3 runs it (the package itself is pure Python); the binary decides the platform.
        platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["tag"] = f"py3-none-{platform}"
