-- The API reference of the task global (bindings/task.cpp); format: stdlib/apidoc.lua.
return {
  name = "task", require = "smtpsh.task", global = true,
  title = "tasks on the event loop",
  summary = "coroutines on one event loop: spawn, sleep, wait, all; network calls yield only their own task",
  notes = {
    "Every REPL line and script runs as a task. A deadlock (every task waiting on another) is an error, not a hang; Ctrl-C interrupts the running chunk and everything it waits on.",
  },
  entries = {
    { name = "spawn", sig = "task.spawn(fn, ...)", summary = "runs fn(...) as a new task",
      returns = "a task handle t: t:wait() as task.wait(t), t:status() \"ready\" | \"running\" | \"waiting\" | \"done\" | \"failed\"",
      errors = "raises when fn is not a function; a task that fails with nobody waiting is reported",
      example = 't = task.spawn(dns.mx, "example.com")' },
    { name = "sleep", sig = "task.sleep(seconds)", summary = "pauses this task only",
      returns = "nothing", errors = "raises unless seconds is a finite number, 0 or more", example = "task.sleep(0.5)" },
    { name = "wait", sig = "task.wait(t)", summary = "waits for t to finish",
      returns = "t's results", errors = "nil, err when t raised", example = "local mx, err = task.wait(t)" },
    { name = "all", sig = "task.all{t1, t2, ...}", summary = "waits for every task",
      returns = "{ {n =, ...}, ... }: each one's results packed, in order",
      errors = "nil, err: the first failure by position", example = "local results = task.all{t1, t2}" },
    { name = "now", sig = "task.now()", summary = "seconds on a monotonic clock, for timing",
      returns = "a number", errors = "none", example = "local t0 = task.now()" },
  },
}
