"""The process the SIGTERM test starts: ``kill_worker``'s run with ``on_signal=True``.

``python preempt_worker.py FOLDER`` resumes from FOLDER, prints "step N" after every step of
this run (so the test can signal it mid-run), and on ``fx.Preempted`` prints
"preempted STEP PATH" and exits with status 3; at the end it writes FOLDER/final.npy.
"""

import sys

import kill_worker

import fluxjax as fx

if __name__ == "__main__":
    try:
        kill_worker.main(sys.argv[1], announce=True, on_signal=True)
    except fx.Preempted as e:
        print(f"preempted {e.step} {e.path}", flush=True)
        sys.exit(3)
