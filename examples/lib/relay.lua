-- Relaying bytes between two connections with backpressure, shared by
-- examples/lb.lua and examples/proxy.lua.
--
-- An endpoint has the methods send, pause, resume, shutdown, disconnect and
-- close: a net.TCPSocket as it is, or a server's client wrapped by
-- relay.endpoint(server, id).
local relay = {}

function relay.endpoint(server, id)
  return {
    send = function(_, data) return server:send(id, data) end,
    pause = function() server:pause(id) end,
    resume = function() server:resume(id) end,
    shutdown = function() server:shutdown(id) end,
    disconnect = function() server:disconnect(id) end,
    close = function() server:close(id) end,
  }
end

-- Passes data that `from` produced on to `to`. When `to` is slow (send
-- returned false) `from` is paused until `to` drains: the caller resumes it
-- from to's drain callback. When `to` is gone, both are closed and
-- log(format, ...) is told why.
function relay.pass(from, to, data, log)
  local ok, err = to:send(data)
  if ok == false then
    from:pause()
  elseif ok == nil then  -- nothing can flow any more
    log("relay stopped: %s", err)
    from:close()
    to:close()
  end
end

-- The send_proxy option for the backend connection of server's client id:
-- a PROXY header of `version` (1 or 2) naming the client (peer) and the
-- address it connected to (sockname); a header without addresses when they
-- are unknown or of different families; nil when version is nil or 0.
function relay.send_proxy(server, id, version)
  if not version or version == 0 then return nil end
  local sip, sport = server:peer(id)
  local dip, dport = server:sockname(id)
  if not sip or not dip or (sip:find(":") ~= nil) ~= (dip:find(":") ~= nil) then
    return { version = version }
  end
  return { version = version, source_ip = sip, source_port = sport,
           dest_ip = dip, dest_port = dport }
end

return relay
