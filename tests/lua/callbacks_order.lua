-- Exactly-once callbacks, in order, and never inside the call that caused
-- them; client ids positive, increasing, never reused after stop()+listen().
local net = require "net"
local t = require "testlib"

local function is_id(id, what)
  t.eq(math.type(id), "integer", what .. " is an integer")
  t.truthy(id > 0, what .. " is positive (" .. tostring(id) .. ")")
  return id
end

-- Phase 1: one client, one exchange, client-side disconnect.
local slog = t.log("server")
local srv, port
local ids = {}

local function server_callbacks(on)
  return {
    started = slog:fn("started", on.started),
    connected = slog:fn("connected", function(id)
      is_id(id, "server connected(id)")
      if #ids > 0 then
        t.truthy(id > ids[#ids], ("id %d after id %d: ids must increase"):format(id, ids[#ids]))
      end
      ids[#ids + 1] = id
      if on.connected then on.connected(id) end
    end),
    data = slog:fn("data", on.data),
    disconnected = slog:fn("disconnected", on.disconnected),
    error = slog:fn("error", function(msg) error("server error: " .. tostring(msg)) end),
  }
end

t.run(5000, function(done)
  local clog = t.log("client")
  local server_done, client_done = false, false
  local function check_end()
    if not (server_done and client_done) then return end
    -- Give stray callbacks a chance to fire before checking counts.
    t.after(100, function()
      slog:expect({ "started", "connected", "data", "disconnected" })
      clog:expect({ "connected", "data", "disconnected" })
      t.eq(slog:get("connected")[1], slog:get("disconnected")[1], "disconnected(id) id")
      t.eq(slog:get("disconnected")[2], nil, "orderly close reason")
      t.eq(slog:get("disconnected").n <= 2, true, "disconnected argument count")
      t.eq(slog:get("data")[1], ids[1], "data(id) id")
      t.eq(slog:get("data")[2], "hello", "data(id, data) data")
      t.eq(clog:get("data")[1], "world", "client data")
      t.eq(clog:get("connected").n, 0, "connected() gets no arguments")
      t.eq(clog:get("disconnected").n, 0, "client disconnected() gets no arguments")
      done()
    end)
  end

  srv, port = t.listen(server_callbacks {
    started = function()
      local client = net.TCPSocket()
      t.eq(t.call(client, "connect", "127.0.0.1", port, {
        connected = clog:fn("connected", function()
          t.eq(slog:count("started"), 1, "started before a client connects")
          t.eq(t.call(client, "send", "hello"), true, "send result")
        end),
        data = clog:fn("data", function(d)
          t.eq(d, "world", "client data")
          t.call(client, "disconnect")
          -- After disconnect(): send fails, nothing more fires but disconnected.
          t.fails("send after disconnect", client.send, client, "late")
        end),
        disconnected = clog:fn("disconnected", function()
          t.eq(clog:count("disconnected"), 1, "client disconnected once")
          client_done = true
          check_end()
        end),
        error = clog:fn("error", function(msg) error("client error: " .. tostring(msg)) end),
      }), true, "connect() result")
    end,
    data = function(id, d)
      t.eq(d, "hello", "server data")
      t.eq(t.call(srv, "send", id, "world"), true, "server send result")
    end,
    disconnected = function()
      server_done = true
      check_end()
    end,
  })
  t.eq(slog:count("started"), 0, "started must not fire inside listen()")
end, { keep = true })

-- Phase 2: a second client gets a larger id; stop() with it connected fires
-- disconnected(id) from the loop; listen() again, a third client's id is
-- larger still (ids never reused by the same server object).
t.run(5000, function(done)
  t.call(srv, "stop")
  slog.events = {}
  local c2log, c3log = t.log("client2"), t.log("client3")
  local c2, c3 = net.TCPSocket(), net.TCPSocket()
  local stopped = false

  local function finish()
    t.after(100, function()
      slog:expect({ "started", "connected", "disconnected",
                    "started", "connected", "disconnected" })
      c2log:expect({ "connected", "disconnected" })
      c3log:expect({ "connected", "disconnected" })
      t.same(srv:clients(), {}, "clients() at the end")
      done()
    end)
  end

  local function listen_third()
    t.eq(t.call(srv, "listen", "127.0.0.1", 0, server_callbacks {
      started = function()
        t.call(c3, "connect", "127.0.0.1", select(2, srv:address()), {
          connected = c3log:fn("connected"),
          disconnected = c3log:fn("disconnected", function()
            if slog:count("disconnected") == 2 then finish() end
          end),
          error = c3log:fn("error", function(m) error("client3 error: " .. tostring(m)) end),
        })
      end,
      connected = function(id)
        t.same(srv:clients(), { id }, "clients() with the third client")
        -- close(id) fires nothing inside; disconnected(id) comes later.
        t.eq(t.call(srv, "close", id), true, "server:close(id) result")
      end,
      disconnected = function(id)
        t.eq(id, ids[3], "disconnected(id) after close(id)")
        if c3log:count("disconnected") == 1 then finish() end
      end,
    }), true, "listen() again")
  end

  t.eq(t.call(srv, "listen", "127.0.0.1", 0, server_callbacks {
    started = function()
      t.call(c2, "connect", "127.0.0.1", select(2, srv:address()), {
        connected = c2log:fn("connected"),
        disconnected = c2log:fn("disconnected"),
        error = c2log:fn("error", function(m) error("client2 error: " .. tostring(m)) end),
      })
    end,
    connected = function(id)
      t.same(srv:clients(), { id }, "clients() with the second client")
      t.call(srv, "stop")
      stopped = true
    end,
    disconnected = function(id)
      t.truthy(stopped, "disconnected only after stop()")
      t.eq(id, ids[2], "disconnected(id) after stop()")
      t.same(srv:clients(), {}, "clients() once the last client ended")
      listen_third()
    end,
  }), true, "listen() after stop()")
  t.closing(srv)
end)

t.eq(#ids, 3, "three connections seen")
t.truthy(ids[1] < ids[2] and ids[2] < ids[3], "ids increase: " .. t.show(ids))

-- Phase 3: close() on a connected client (idempotent), then reconnecting
-- the same socket; each disconnected comes from the loop, once.
t.run(5000, function(done)
  local log = t.log("reuse")
  local srvlog = t.log("server3")
  local s2, p2 = t.listen({
    connected = srvlog:fn("connected"),
    disconnected = srvlog:fn("disconnected"),
    error = srvlog:fn("error"),
  })
  t.closing(s2)
  local c = net.TCPSocket()
  local rounds = 0
  local cbs
  cbs = {
    connected = log:fn("connected", function()
      t.call(c, "close")
      t.call(c, "close")
      t.call(c, "disconnect")
      t.match(tostring(c), "closed", "tostring after close()")
    end),
    disconnected = log:fn("disconnected", function()
      rounds = rounds + 1
      if rounds < 3 then
        -- A socket whose connection ended may connect again.
        t.eq(t.call(c, "connect", "127.0.0.1", p2, cbs), true, "reconnect")
      else
        t.after(100, function()
          log:expect({ "connected", "disconnected", "connected", "disconnected",
                       "connected", "disconnected" })
          t.eq(srvlog:count("connected"), 3, "server saw three connections")
          t.eq(srvlog:count("disconnected"), 3, "server saw three ends")
          t.eq(srvlog:count("error"), 0, "server error callback")
          done()
        end)
      end
    end),
    error = log:fn("error", function(m) error("client error: " .. tostring(m)) end),
  }
  t.call(c, "connect", "127.0.0.1", p2, cbs)
end)
