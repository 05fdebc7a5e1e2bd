-- smtp_starttls.lua: the shape of an SMTP server with STARTTLS (RFC 3207):
-- the session starts in plaintext, EHLO advertises STARTTLS, and after
-- "220 ready" the same connection is upgraded with server:starttls. It
-- stores nothing: every command gets a canned answer.
--
-- Usage:  lnet examples/smtp_starttls.lua CERT KEY [PORT]
--   PORT default 2525; 0 picks a free port.  Listens on 127.0.0.1.
-- On start it prints  smtp_starttls: listening on 127.0.0.1:PORT
-- Try:   openssl s_client -starttls smtp -connect 127.0.0.1:2525 -CAfile ca.pem
--
-- Pipelined commands (several in one packet) are answered in order; bytes
-- that arrive before the upgrade are all handled in plaintext first.

local net = require "net"

local cert, key, port = arg[1], arg[2], tonumber(arg[3] or "2525")
if not (cert and key and port) then
  io.stderr:write("usage: lnet examples/smtp_starttls.lua CERT KEY [PORT]\n")
  os.exit(2)
end
local ctx = net.TLSContext { cert = cert, key = key }

local server = net.TCPServer()
local sessions = {}

local function reply(id, text) server:send(id, text .. "\r\n") end

local function command(id, s, line)
  local verb = (line:match("^(%a+)") or ""):upper()
  if verb == "EHLO" or verb == "HELO" then
    reply(id, "250-lnet greets you")
    reply(id, s.secure and "250 8BITMIME" or "250 STARTTLS")
  elseif verb == "STARTTLS" then
    if s.secure then return reply(id, "503 already secured") end
    reply(id, "220 ready to start TLS")
    s.upgrading = true
    server:starttls(id, ctx)
  elseif verb == "QUIT" then
    reply(id, "221 bye")
    server:disconnect(id)
  elseif verb == "NOOP" or verb == "MAIL" or verb == "RCPT" or verb == "RSET" then
    reply(id, "250 ok " .. (s.secure and "(tls)" or "(plain)"))
  else
    reply(id, "500 unknown command")
  end
end

server:listen("127.0.0.1", port, {
  started = function()
    print(("smtp_starttls: listening on 127.0.0.1:%d"):format(select(2, server:address())))
    io.stdout:flush()
  end,
  connected = function(id)
    sessions[id] = { buf = "" }
    reply(id, "220 lnet ESMTP")
  end,
  data = function(id, data)
    local s = sessions[id]
    s.buf = s.buf .. data
    while true do
      local line, rest = s.buf:match("^(.-)\r?\n(.*)$")
      if not line then break end
      s.buf = rest
      if s.upgrading then
        -- A client must wait for "220" before its TLS hello: anything after
        -- STARTTLS in the same packet is a protocol violation.
        reply(id, "554 bytes after STARTTLS")
        server:close(id)
        return
      end
      command(id, s, line)
    end
  end,
  secured = function(id, info)
    local s = sessions[id]
    s.secure, s.upgrading = true, false
    print(("smtp_starttls: client %d secured with %s"):format(id, info.protocol))
    io.stdout:flush()
  end,
  disconnected = function(id, reason)
    sessions[id] = nil
    if reason then print(("smtp_starttls: client %d ended: %s"):format(id, reason)) io.stdout:flush() end
  end,
}, { idle_timeout = 60000 })
