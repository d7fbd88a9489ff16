-- task_background.lua: the process waits for tasks the top-level chunk spawned (and their
-- own children), even though the chunk itself returns at once.
task.spawn(function()
  task.sleep(0.2)
  print("late")
end)
task.spawn(function()
  task.spawn(function()
    task.sleep(0.3)
    print("nested")
  end)
end)
print("main done")
