-- wrk script for bench_api.py's "uncached" scenarios: every request takes the next URL path
-- from a file (the script's first argument, one path a line; the second is wrk's thread
-- count). The threads take turns through the list, so no two requests share a URL.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_report.lua")

local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  step = tonumber(args[2])
  position = id + 1
end

function request()
  local path = paths[position]
  position = position + step
  if position > #paths then
    position = (position - 1) % #paths + 1
  end
  return wrk.format(nil, path)
end
