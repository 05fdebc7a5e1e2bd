-- The framing option over real sockets: whole messages to 'data' however
-- the bytes were cut on the way; an oversize message ends the connection
-- (message too long) before it is buffered.
local net = require "net"
local co = require "net.co"
local t = require "co.colib"

-- Sends each piece of the stream from a raw client (no framing) with a
-- pause between them, to a framed server; returns what the server's 'data'
-- got and the 'disconnected' reason.
local function through(framing, pieces, max_message)
  local got, reason, code
  local ended = false
  local srv = net.TCPServer()
  srv:listen("127.0.0.1", 0, {
    data = function(_, m) got[#got + 1] = m end,
    disconnected = function(_, r, c) reason, code, ended = r, c, true end,
  }, { framing = framing, max_message = max_message })
  got = {}
  local _, port = srv:address()
  local s = co.tcp()
  assert(s:connect("127.0.0.1", port, { nodelay = true }))
  for _, p in ipairs(pieces) do
    if not s:send(p) then break end
    co.sleep(2)
  end
  s:close()
  for _ = 1, 500 do
    if ended then break end
    co.sleep(5)
  end
  srv:stop()
  return got, reason, code
end

t.run(60000, function()
  local got = through("line", { "one\r\ntw", "o\nthr", "ee", "\n", "\n", "four\r", "\n" })
  t.eq(table.concat(got, "|"), "one|two|three||four", "lines")

  got = through({ delimiter = "\r\n\r\n" }, { "a\r\n", "\r\nb\r", "\n\r", "\n" })
  t.eq(table.concat(got, "|"), "a|b", "delimiter")

  for _, bytes in ipairs({ 1, 2, 4, 8 }) do
    for _, endian in ipairs({ "big", "little" }) do
      local spec = { length = bytes, endian = endian }
      local wire = net.frame("hello", spec) .. net.frame("", spec) .. net.frame(("z"):rep(200), spec)
      local pieces = {}
      for i = 1, #wire, 3 do pieces[#pieces + 1] = wire:sub(i, i + 2) end
      got = through(spec, pieces)
      t.eq(#got, 3, ("messages, length %d %s"):format(bytes, endian))
      t.eq(got[1] .. "|" .. got[2] .. "|" .. #got[3], "hello||200", "length-prefixed")
    end
  end

  -- Oversize: a 5 MB line against max_message 64 KiB; the connection ends
  -- with the message, the server's memory does not grow by the line.
  local rss0 = t.rss_kib()
  local big = ("x"):rep(1 << 20)
  local reason, code
  got, reason, code = through("line", { "ok\n", big, big, big, big, big }, 64 << 10)
  t.eq(got[1], "ok", "message before the oversize one")
  t.eq(#got, 1, "nothing of the oversize line delivered")
  t.has(reason, "message too long (", "reason")
  t.has(reason, " > 65536)", "reason names the limit")
  t.eq(code, "MESSAGE_TOO_LONG", "the code")
  t.truthy((t.rss_kib() - rss0) < 16 * 1024, "memory grew by less than 16 MiB")
  -- A length prefix announcing 1 GB: refused from its header.
  got, reason, code = through({ length = 4 }, { "\64\0\0\0", "abc" })
  t.eq(reason, "message too long (1073741824 > 1048576)", "oversize length prefix")
  t.eq(code, "MESSAGE_TOO_LONG", "its code")
  -- The peer ends inside a message: cut, and said so.
  got, reason, code = through("line", { "abc\npart", "ial" })
  t.eq(table.concat(got, "|"), "abc", "the whole line before the end")
  t.eq(reason, "connection ended inside a message (7 bytes held)", "an unfinished line at the end")
  t.eq(code, "INCOMPLETE_MESSAGE", "its code")
  got, reason, code = through({ length = 4 }, { net.frame("x", { length = 4 }), "\0\0\0\10", "abcd" })
  t.eq(table.concat(got, "|"), "x", "the whole message before the end")
  t.eq(reason, "connection ended inside a message (8 bytes held)", "a length prefix cut short")
  t.eq(code, "INCOMPLETE_MESSAGE", "its code")
  got, reason, code = through("line", { "done\n" })
  t.eq(reason, nil, "an end after a whole message is orderly")
  -- The peer of a connection lnet cuts for framing sees a reset, not a FIN.
  do
    local srv = net.TCPServer()
    srv:listen("127.0.0.1", 0, {}, { framing = "line", max_message = 10 })
    local _, port = srv:address()
    local s = co.tcp()
    assert(s:connect("127.0.0.1", port))
    s:send(("y"):rep(100))
    s:settimeout(3000)
    local data, err, partial, ecode = s:receive("*a")
    t.eq(data, nil, "no orderly end")
    t.eq(ecode, "ECONNRESET", "the peer sees a reset (" .. tostring(err) .. ")")
    srv:stop()
  end
  got, reason, code = through({ length = 2, adjust = -4 }, { "\0\2" })
  t.eq(reason, "bad message length (below 0 after adjust)", "negative length")
  t.eq(code, "BAD_LENGTH", "its code")
  -- Errors in the option itself raise.
  local srv = net.TCPServer()
  t.eq(pcall(srv.listen, srv, "127.0.0.1", 0, {}, { framing = "words" }), false, "bad framing")
  t.eq(pcall(srv.listen, srv, "127.0.0.1", 0, {}, { framing = { length = 3 } }), false, "bad length")
  t.eq(pcall(net.frame, ("x"):rep(300), { length = 1 }), false, "net.frame: too long for the field")
  t.eq(net.frame("abc"), "\0\0\0\3abc", "net.frame default: 4 bytes big-endian")
  t.eq(net.frame("abc", { length = 2, endian = "little", adjust = -2 }), "\5\0abc", "net.frame adjust")

  -- A framed client socket too.
  local srv2 = net.TCPServer()
  srv2:listen("127.0.0.1", 0, { connected = function(id) srv2:send(id, "l1\nl2\nl") srv2:send(id, "3\n") srv2:disconnect(id) end })
  local _, p2 = srv2:address()
  local lines, done = {}, false
  local c = net.TCPSocket()
  c:connect("127.0.0.1", p2, { data = function(m) lines[#lines + 1] = m end,
                               disconnected = function() done = true end }, { framing = "line" })
  for _ = 1, 500 do if done then break end co.sleep(5) end
  t.eq(table.concat(lines, ","), "l1,l2,l3", "client framing")
  srv2:stop()
end)

-- A data callback that raises on one message of a read: the error leaves
-- net.loop() as any callback error, and the messages after it in the same
-- read are still delivered (once the loop runs again).
do
  local got = {}
  local srv = net.TCPServer()
  srv:listen("127.0.0.1", 0, {
    data = function(_, m)
      got[#got + 1] = m
      if m == "b" then error("raised on b", 0) end
    end,
  }, { framing = "line" })
  local _, port = srv:address()
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, { connected = function() c:send("a\nb\nc\n") end })
  local ok, err
  for _ = 1, 50 do
    ok, err = pcall(net.loop, "once")
    if not ok then break end
  end
  t.eq(ok, false, "the callback's error leaves net.loop")
  t.has(err, "raised on b", "its message")
  t.eq(table.concat(got, ","), "a,b", "delivered up to the error")
  -- The next loop delivers c although the peer sends nothing more.
  local guard = net.setTimeout(function() end, 3000)  -- bounds the wait
  for _ = 1, 50 do
    net.loop("once")
    if #got >= 3 then break end
  end
  net.clearTimeout(guard)
  t.eq(table.concat(got, ","), "a,b,c", "the rest of the read, with no new data")
  c:send("d\n")
  for _ = 1, 50 do
    net.loop("once")
    if #got >= 4 then break end
  end
  t.eq(table.concat(got, ","), "a,b,c,d", "nothing lost after the error")
  c:close()
  srv:stop()
  net.loop()
end

-- The same with net.stop() in the callback and the peer's FIN right after
-- the messages: the next loop delivers the rest, then 'disconnected'.
do
  local events = {}
  local srv = net.TCPServer()
  srv:listen("127.0.0.1", 0, {
    data = function(_, m)
      events[#events + 1] = m
      if m == "b" then net.stop() end
    end,
    disconnected = function() events[#events + 1] = "disconnected" end,
  }, { framing = "line" })
  local _, port = srv:address()
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, { connected = function() c:send("a\nb\nc\n"); c:disconnect() end })
  local guard = net.setTimeout(function() end, 3000)
  for _ = 1, 50 do
    net.loop("once")
    if events[2] then break end
  end
  t.eq(table.concat(events, ","), "a,b", "stopped after b")
  for _ = 1, 50 do
    net.loop("once")
    if events[#events] == "disconnected" then break end
  end
  net.clearTimeout(guard)
  t.eq(table.concat(events, ","), "a,b,c,disconnected", "c, then the end")
  srv:stop()
  net.loop()
end
