"""Runs a command and prints `wall_s cpu_s` (the command's own user + system CPU, children included)."""
import resource
import subprocess
import sys
import time

started = time.monotonic()
result = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
wall = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stderr.write(result.stdout.decode(errors="replace").splitlines()[-1] + "\n" if result.stdout else "")
print(f"{wall:.3f} {usage.ru_utime + usage.ru_stime:.3f}")
sys.exit(result.returncode)
