"""smtpsh's tasks: task.spawn / sleep / wait / all, and the process waiting for its tasks.

    /usr/bin/python3 -m unittest -v tests/e2e/test_tasks.py    (SMTPSH=/path/to/smtpsh)
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LUA_DIR, TIME_SCALE, SmtpshTestCase, describe, run_smtpsh,  # noqa: E402
                     skip_if_slowed, timed_run)


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
        if TIME_SCALE == 1:  # the start-up alone takes seconds under valgrind
            self.assertLess(elapsed, 3.0, describe(cp))

    @skip_if_slowed
    def test_five_sleeps_run_concurrently(self):
        cp, elapsed = timed_run([lua("task_parallel.lua")])
        self.assertOk(cp, "OK task_parallel")
        self.assertGreaterEqual(elapsed, 0.3, f"finished too early: {elapsed:.3f}s{describe(cp)}")
        self.assertLess(elapsed, 1.0, f"not concurrent: {elapsed:.3f}s{describe(cp)}")

    @skip_if_slowed
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


class TestTaskEdges(SmtpshTestCase):
    """What the scheduler does when tasks misbehave: no hang, no silent loss."""

    def test_deadlock_is_an_error_not_a_hang(self):
        code = ("local a, b\n"
                "a = task.spawn(function() task.sleep(0.01); return task.wait(b) end)\n"
                "b = task.spawn(function() task.sleep(0.01); return task.wait(a) end)\n"
                "local ok, err = task.wait(a)\n")
        cp, elapsed = timed_run(["-e", code])
        self.assertExit(cp, 1)
        self.assertIn("deadlock", cp.stderr, describe(cp))
        self.assertLess(elapsed, 5.0, describe(cp))

    def test_failed_task_nobody_waited_for_is_reported_and_fails_the_run(self):
        cp = run_smtpsh(["-e", "task.spawn(function() error('lost-' .. 'task') end)"])
        self.assertExit(cp, 1)
        self.assertIn("error in a task nobody waited for", cp.stderr, describe(cp))
        self.assertIn("lost-task", cp.stderr, describe(cp))

    def test_waited_failure_is_a_value_not_a_report(self):
        code = ("local t = task.spawn(function() error({code = 7}) end)\n"
                "local ok, err = task.wait(t)\n"
                "print(ok, err.code)")
        cp = run_smtpsh(["-e", code])
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "nil\t7\n", describe(cp))
        self.assertEqual(cp.stderr, "", describe(cp))

    def test_coroutine_yield_in_a_task_gives_others_a_turn(self):
        code = ("local log = {}\n"
                "local a = task.spawn(function() for i = 1, 3 do log[#log+1] = 'a' .. i; coroutine.yield() end end)\n"
                "local b = task.spawn(function() for i = 1, 3 do log[#log+1] = 'b' .. i; coroutine.yield() end end)\n"
                "task.all{a, b}\n"
                "print(table.concat(log, ' '))")
        cp = run_smtpsh(["-e", code])
        self.assertExit(cp, 0)
        self.assertEqual(cp.stdout, "a1 b1 a2 b2 a3 b3\n", describe(cp))

    def test_io_from_a_plain_coroutine_is_a_clear_error(self):
        code = "coroutine.wrap(function() task.sleep(0.1) end)()"
        cp = run_smtpsh(["-e", code])
        self.assertExit(cp, 1)
        self.assertIn("task.sleep must be called from a task", cp.stderr, describe(cp))

    def test_wrong_arguments_raise_with_the_signature(self):
        cp = run_smtpsh(["-e", "net.connect('127.0.0.1', 99999)"])
        self.assertExit(cp, 1)
        self.assertIn("port must be 1..65535", cp.stderr, describe(cp))
        cp = run_smtpsh(["-e", "net.connect('127.0.0.1', 25, {timeout = -1})"])
        self.assertExit(cp, 1)
        self.assertIn("net.connect(host, port [, {timeout=, source=}])", cp.stderr, describe(cp))
        cp = run_smtpsh(["-e", "task.all{1}"])
        self.assertExit(cp, 1)
        self.assertIn("element 1 is a number, not a task", cp.stderr, describe(cp))
