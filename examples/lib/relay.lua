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

return relay
