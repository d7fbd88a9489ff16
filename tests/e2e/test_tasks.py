"""smtpsh's tasks: task.spawn / sleep / wait / all, and the process waiting for its tasks.

    /usr/bin/python3 -m unittest -v tests/e2e/test_tasks.py    (SMTPSH=/path/to/smtpsh)
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import LUA_DIR, SmtpshTestCase, describe, run_smtpsh, timed_run  # noqa: E402


def lua(name):
    return os.path.join(LUA_DIR, name)


class TestTasks(SmtpshTestCase):
    def test_wait(self):
        cp = run_smtpsh([lua("task_wait.lua")])
        self.assertOk(cp, "OK task_wait")

    def test_all(self):
        cp = run_smtpsh([lua("task_all.lua")])
        self.assertOk(cp, "OK task_all")

    def test_process_waits_for_spawned_tasks(self):
        cp, elapsed = timed_run([lua("task_background.lua")])
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout.splitlines(), ["main done", "late", "nested"], describe(cp))
        self.assertGreaterEqual(elapsed, 0.3, describe(cp))

    def test_process_waits_for_task_from_e(self):
        cp = run_smtpsh(["-e", "task.spawn(function() task.sleep(0.2); print('after') end)"])
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "after\n", describe(cp))

    def test_sleep_duration(self):
        cp, elapsed = timed_run(["-e", "task.sleep(0.4); print('woke')"])
        self.assertOk(cp, "woke")
        self.assertGreaterEqual(elapsed, 0.4, describe(cp))
        self.assertLess(elapsed, 3.0, describe(cp))

    def test_five_sleeps_run_concurrently(self):
        cp, elapsed = timed_run([lua("task_parallel.lua")])
        self.assertOk(cp, "OK task_parallel")
        self.assertGreaterEqual(elapsed, 0.3, f"finished too early: {elapsed:.3f}s{describe(cp)}")
        self.assertLess(elapsed, 1.0, f"not concurrent: {elapsed:.3f}s{describe(cp)}")

    def test_five_unwaited_sleeps_run_concurrently(self):
        code = ("for i = 1, 5 do task.spawn(function() task.sleep(0.3); io.write(i, ' ') end) end")
        cp, elapsed = timed_run(["-e", code])
        self.assertExit(cp, 0)
        self.assertEqual(sorted(cp.stdout.split()), ["1", "2", "3", "4", "5"], describe(cp))
        self.assertGreaterEqual(elapsed, 0.3, f"{elapsed:.3f}s{describe(cp)}")
        self.assertLess(elapsed, 1.0, f"not concurrent: {elapsed:.3f}s{describe(cp)}")

    def test_main_chunk_error_still_exits_1(self):
        cp = run_smtpsh(["-e", "task.spawn(function() task.sleep(0.05) end); error('main-failed')"])
        self.assertExit(cp, 1)
        self.assertIn("main-failed", cp.stderr, describe(cp))


if __name__ == "__main__":
    unittest.main()
