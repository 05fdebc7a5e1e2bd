-- net.co over Unix domain sockets: co.listen("unix:/path", nil or 0, handler)
-- and co.tcp():connect("unix:/path"), a file path and an abstract name
-- ("unix:@name"): lines echoed, receive("*l") framing over split and
-- joined writes, byte counts, the pool, and the file removed by close().
local net = require "net"
local co = require "net.co"
local t = require "co.colib"

-- A fresh path in the temporary directory (os.tmpname made the file; the
-- server needs the name free).
local path = os.tmpname()
os.remove(path)
path = path .. ".sock"
local abstract = ("@lnet-co-test-%d-%d"):format(math.random(1, 1 << 30), os.time())

-- The errno of opening path: 2 (ENOENT) when there is no file; a socket
-- file cannot be opened either, with another errno (ENXIO).
local function open_errno(p)
  local f, _, code = io.open(p)
  if f then f:close(); return 0 end
  return code
end

local cases = {
  { host = "unix:" .. path, port = nil },
  { host = "unix:" .. path, port = 0 },
  { host = "unix:" .. abstract, port = nil },
  { host = "unix:" .. abstract, port = 0 },
}

for _, case in ipairs(cases) do
  local what = ("%s port %s"):format(case.host, tostring(case.port))
  -- Answers each line upper-cased; "count N" is answered with N raw bytes.
  local srv = co.listen(case.host, case.port, function(sock)
    while true do
      local line = sock:receive("*l")
      if not line then break end
      local n = line:match("^count (%d+)$")
      if n then
        sock:send(string.rep("z", tonumber(n)))
      else
        sock:send(line:upper() .. "\n")
      end
    end
  end)
  local h = srv:address()
  t.eq(h, case.host, what .. ": the server's address")
  if case.host:sub(6, 6) == "/" then
    t.truthy(open_errno(path) ~= 2, what .. ": the socket file exists")
  end
  t.run(10000, function()
    local s = co.tcp()
    s:settimeout(5000)
    t.eq(s:connect(case.host, case.port), 1, what .. ": connect")
    for i = 1, 5 do
      t.eq(s:send("message " .. i .. "\n"), #("message " .. i .. "\n"), what .. ": send")
      t.eq(s:receive("*l"), "MESSAGE " .. i, what .. ": echo " .. i)
    end
    -- Several lines in one write, one line over several writes.
    s:send("one\ntwo\r\nthree\n")
    t.eq(s:receive("*l"), "ONE", what .. ": first of three")
    t.eq(s:receive("*l"), "TWO", what .. ": second (CR LF)")
    t.eq(s:receive("*l"), "THREE", what .. ": third")
    s:send("sp")
    co.sleep(20)
    s:send("lit")
    co.sleep(20)
    s:send(" line\n")
    t.eq(s:receive("*l"), "SPLIT LINE", what .. ": a line over three writes")
    s:send("count 70000\n")
    local big = s:receive(70000)
    t.eq(big and #big, 70000, what .. ": 70,000 bytes by count")
    -- Back to the pool and out again: the same connection.
    t.eq(s:setkeepalive(), 1, what .. ": setkeepalive")
    local s2 = co.tcp()
    t.eq(s2:connect(case.host, case.port), 1, what .. ": connect from the pool")
    t.eq(s2:getreusedtimes(), 1, what .. ": reused")
    s2:send("again\n")
    t.eq(s2:receive("*l"), "AGAIN", what .. ": pooled connection works")
    s2:close()
  end)
  srv:stop()
  if case.host:sub(6, 6) == "/" then
    t.eq(open_errno(path), 2, what .. ": stop() removed the socket file")
  end
end
