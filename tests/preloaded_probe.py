"""What a command started by tests/preloaded.py sees of itself, as JSON on standard output
(tests/test_preloaded.py): `python -m tests.preloaded_probe <exit status>|sleep`."""

import json
import os
import sys
import time

if __name__ == "__main__":
    if sys.argv[1:] == ["sleep"]:
        print("sleeping", flush=True)
        time.sleep(60)
    facts = {
        "argv": sys.argv[1:],
        "environment": dict(os.environ),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "session": os.getsid(0),
        "stdin": sys.stdin.read(),
    }
    print(json.dumps(facts))
    sys.exit(int(sys.argv[1]))
