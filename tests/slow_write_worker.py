"""``kill_worker``'s run with every checkpoint write held open on the background thread:
``python slow_write_worker.py FOLDER`` prints "writing STEP" once a checkpoint's temporary
file is complete but not yet renamed (the write then sleeps), and "step N" after every
training step, so the test can see training go on during the write and kill it there."""

import sys
import time

import kill_worker

from fluxjax import _files

_atomic_write = _files.atomic_write


def slow_atomic_write(path, write):
    def held(tmp):
        write(tmp)
        sys.stdout.write(f"writing {path[-20:-12]}\n")  # one write: lines stay whole
        sys.stdout.flush()
        time.sleep(30)  # the test kills the process meanwhile

    _atomic_write(path, held)


if __name__ == "__main__":
    _files.atomic_write = slow_atomic_write
    kill_worker.main(sys.argv[1], announce=True, on_signal=True)
