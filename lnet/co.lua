-- net.co: sequential code on lnet's loop. Coroutines wait on sockets and
-- timers; cosockets have the shape of OpenResty's ngx.socket.tcp (itself
-- LuaSocket's, made non-blocking). Compiled into net.so (see co.cc): the
-- chunk receives the net module, the constructor of the C input buffer and
-- the layer's other C parts (wait_data, setup, concat, methods).
local net, new_buffer, cparts = ...
local wait_data, flat_concat = cparts.wait_data, cparts.concat

local co = {}

local coroutine_create, coroutine_resume = coroutine.create, coroutine.resume
local coroutine_running, coroutine_status = coroutine.running, coroutine.status
local coroutine_yield, coroutine_isyieldable = coroutine.yield, coroutine.isyieldable
local setTimeout, clearTimeout, net_now = net.setTimeout, net.clearTimeout, net.now
local type, error, select, tostring, tonumber = type, error, select, tostring, tonumber
local pack, unpack, concat = table.pack, table.unpack, table.concat
local math_type = math.type
local traceback = debug.traceback

local DEFAULT_TIMEOUT = 60000        -- ms, as OpenResty's lua_socket_*_timeout
local DEFAULT_MAX_INPUT = 1 << 20    -- received bytes held before reading pauses
local DEFAULT_MAX_LINE = 64 << 10
local SEND_CHUNK = 256 << 10         -- a long string is queued in pieces this big
local BATCH = 64 << 10               -- small pieces of a table are joined up to this

---------------------------------------------------------------------------
-- Threads: every coroutine started by co.spawn, co.listen or ngx.timer.at.
-- A suspended coroutine waits with a token; only a wake-up that carries
-- the current token resumes it, so a late timer or a stale wake-up is
-- ignored.

local threads = setmetatable({}, { __mode = "k" })  -- thread -> record
local waiting = {}  -- suspended thread -> token (cleared when it resumes)
local tokens = 0

local step

-- Every thread runs its function through body: an end returns DONE, a
-- suspension yields nothing, so a resumption tells them apart at no cost.
local DONE = {}
local function body(rec, fn, ...)
  rec.results = pack(true, fn(...))
  return DONE
end

-- The coroutine has ended: an end wakes its waiter; an error nobody waits
-- for propagates out of net.loop() with its own traceback.
local function finished(th, ok, err)
  local rec = threads[th]
  if not ok then rec.results = pack(false, err) end
  rec.done = true
  if rec.on_exit then rec.on_exit() end
  local waiter = rec.waiter
  if waiter then
    rec.waiter = nil
    local token = rec.waiter_token
    step(waiter, token, true)
  elseif not ok then
    error(traceback(th, type(err) == "string" and err or tostring(err)), 0)
  end
end

-- The read path resumes threads parked with wait_data from C while
-- waiting[thread] holds their token, ending them with finished().
cparts.setup(waiting, finished)

-- Resumes a suspended thread with (at most) two values.
local function resume_now(th, a, b)
  local ok, r = coroutine_resume(th, a, b)
  if ok and r ~= DONE then return end
  return finished(th, ok, r)
end

-- Makes a thread running fn; first_resume(th, ...) starts it.
local function new_thread(fn, rec)
  local th = coroutine_create(body)
  rec = rec or {}
  rec.fn = fn
  threads[th] = rec
  return th
end

local function first_resume(th, ...)
  local rec = threads[th]
  local fn = rec.fn
  rec.fn = nil
  local ok, r = coroutine_resume(th, rec, fn, ...)
  if ok and r ~= DONE then return end
  return finished(th, ok, r)
end

-- Resumes th if it still waits with token. From inside a coroutine the
-- resumption is deferred to the loop (no coroutine runs nested in another).
function step(th, token, ...)
  if waiting[th] ~= token then return end
  if coroutine_isyieldable() then
    local a, b = ...
    setTimeout(function()
      if waiting[th] ~= token then return end
      waiting[th] = nil
      resume_now(th, a, b)
    end, 0)
    return
  end
  waiting[th] = nil
  return resume_now(th, ...)
end

local function current(level)
  local th, main = coroutine_running()
  if main then
    error("net.co: this call waits, so it must run in a coroutine (co.spawn)", level or 3)
  end
  return th
end

-- Makes a token for the running coroutine; wake it with step(th, token, ...).
local function prepare(level)
  local th = current((level or 3) + 1)
  tokens = tokens + 1
  waiting[th] = tokens
  return th, tokens
end

local function on_timer(th, token) step(th, token, "timeout") end

-- Yields until step(th, token, ...) or, after ms (nil: never), "timeout".
local function suspend(th, token, ms)
  local timer = ms and setTimeout(on_timer, ms, th, token)
  local r, data = coroutine_yield()
  if timer then clearTimeout(timer) end
  waiting[th] = nil
  return r, data
end

local function start(th, ...)
  waiting[th] = nil
  return first_resume(th, ...)
end

-- co.spawn(fn, ...) -> thread: runs fn(...) as a coroutine, started from
-- the loop.
function co.spawn(fn, ...)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'spawn' (function expected, got %s)"):format(type(fn)), 2)
  end
  local th = new_thread(fn)
  setTimeout(start, 0, th, ...)
  return th
end

-- co.wait(thread) -> true, results... | false, message
function co.wait(th)
  local rec = type(th) == "thread" and threads[th]
  if not rec then
    error("bad argument #1 to 'wait' (a thread made by co.spawn expected)", 2)
  end
  if not rec.done then
    if rec.waiter then error("co.wait: another coroutine already waits for this thread", 2) end
    local me, token = prepare(2)
    rec.waiter, rec.waiter_token = me, token
    suspend(me, token, nil)
  end
  local r = rec.results
  return unpack(r, 1, r.n)
end

-- co.kill(thread) -> true | nil, message: ends a thread that is waiting.
function co.kill(th)
  local rec = type(th) == "thread" and threads[th]
  if not rec then return nil, "not a thread made by co.spawn" end
  if rec.done then return nil, "already ended" end
  if coroutine_status(th) ~= "suspended" then return nil, "running" end
  waiting[th] = nil
  coroutine.close(th)
  rec.done = true
  rec.results = pack(false, "killed")
  if rec.on_exit then rec.on_exit() end
  local waiter = rec.waiter
  if waiter then
    rec.waiter = nil
    step(waiter, rec.waiter_token, true)
  end
  return true
end

-- co.sleep(ms): 0 lets every other ready coroutine and callback run first.
function co.sleep(ms)
  if math_type(ms) == nil then
    error(("bad argument #1 to 'sleep' (number expected, got %s)"):format(type(ms)), 2)
  end
  local th, token = prepare(2)
  suspend(th, token, ms > 0 and ms or 0)
end

co.running = coroutine_running

---------------------------------------------------------------------------
-- Connections. A record holds the net object, the input buffer and who
-- waits on it; a cosocket (the object users hold) points to a record while
-- it is connected, and a record outlives its cosocket in the pool.

local function c_send(c, s)
  if c.id then return c.srv:send(c.id, s) end
  return c.sock:send(s)
end

local function c_pause(c)
  if c.id then c.srv:pause(c.id) else c.sock:pause() end
end

local function c_resume(c)
  if c.id then c.srv:resume(c.id) else c.sock:resume() end
end

local function c_disconnect(c)
  if c.id then c.srv:disconnect(c.id) else c.sock:disconnect() end
end

local function c_close(c)
  if c.id then c.srv:close(c.id) else c.sock:close() end
end

local function c_shutdown(c)
  if c.id then c.srv:shutdown(c.id) else c.sock:shutdown() end
end

-- A record for a connection with the options of co.tcp/co.listen (opts)
-- and of connect (copts).
local function new_record(opts, copts)
  local max_input = copts and copts.max_input or opts and opts.max_input or DEFAULT_MAX_INPUT
  local max_line = copts and copts.max_line or opts and opts.max_line or DEFAULT_MAX_LINE
  return {
    buf = new_buffer(max_input, max_line),  -- and the reader (see wait_input)
    max_input = max_input,
    open = false, closed = false, paused = false, uses = 0,
  }
end

-- The net object (server or socket) and id of the record's connection:
-- where its buffer's reads park (wait_data and the C methods).
local function bind(c, obj, id)
  c.buf:bind(obj, id, c)
end

-- A cosocket's record c; self[1] is its buffer, for the methods in C
-- (co.cc), false while there is none.
local function attach(self, c)
  self.c = c
  self[1] = c.buf
end

local function detach(self)
  self.c = nil
  self[1] = false
end

local clear_read_timer

-- Wakes c's reader with value. A read waiting in co.lua (wait_input, a
-- positive token) is valid while waiting[thread] holds its token; one
-- waiting in C (co.cc's read_on, a negative token) while the buffer says it
-- reads (its continuation clears that). From inside a coroutine the
-- resumption is deferred to the loop, as in step.
local function wake_reader(c, value)
  local th, token = c.buf:reader()
  if not th then return end
  if token > 0 then return step(th, token, value) end
  if coroutine_isyieldable() then
    setTimeout(function()
      local th2, token2 = c.buf:reader()
      if th2 == th and token2 == token then resume_now(th, value) end
    end, 0)
    return
  end
  return resume_now(th, value)
end

local function wake_all(c)
  clear_read_timer(c)
  wake_reader(c, "closed")
  if c.writer then step(c.writer, c.wtoken, "closed") end
  if c.connector then step(c.connector, c.ctoken, "closed") end
end

local pools = {}  -- key -> array of idle records (most recent last)

local function unpool(c)
  local list = pools[c.pool]
  if c.idle_timer then clearTimeout(c.idle_timer); c.idle_timer = nil end
  c.pooled = false
  if not list then return end
  for i = #list, 1, -1 do
    if list[i] == c then table.remove(list, i); break end
  end
  if #list == 0 then pools[c.pool] = nil end
end

-- 'data' for a record when its reader is not parked in C (co.cc takes
-- the data straight to a parked one): buffered, the reader woken.
local function on_data(c, d)
  if c.pooled then  -- nobody asked for it: the connection is not reusable
    unpool(c)
    c_close(c)
    return
  end
  local size = c.buf:push(d)
  if not size then  -- out of memory: cut the stream visibly
    c.err = "out of memory for received data"
    c_close(c)
    return
  end
  if size > c.max_input and not c.paused then
    c.paused = true
    c_pause(c)
  end
  -- From a 'data' callback, never inside a coroutine: resumed at once.
  return wake_reader(c, nil)
end

local function on_drain(c)
  if c.writer then step(c.writer, c.wtoken) end
end

local function on_closed(c, reason, code)
  c.closed = true
  c.buf:close()
  if reason and not c.err then c.err, c.code = reason, code end
  if c.pooled then unpool(c) end
  wake_all(c)
end

local function client_callbacks(c)
  return {
    connected = function()
      c.open = true
      if c.connector then step(c.connector, c.ctoken, "connected") end
    end,
    data = function(d) return on_data(c, d) end,
    drain = function() on_drain(c) end,
    secured = function()
      c.secured = true
      if c.connector then step(c.connector, c.ctoken, "secured") end
    end,
    error = function(msg, code)
      c.err, c.code = msg, code
      if not c.open then on_closed(c) end  -- a failed connect: no 'disconnected'
    end,
    disconnected = function() on_closed(c) end,
  }
end

---------------------------------------------------------------------------
-- Cosockets

local Cosocket = {}
Cosocket.__index = Cosocket
Cosocket.__name = "net.co.Socket"

-- The methods in C (co.cc), set below. Each cosocket also holds them as
-- its own fields: a call then finds them in the table itself, without a
-- second lookup through the metatable on every read and write.
local m_receive, m_receiveany, m_send

local function new_cosocket(c, opts)
  return setmetatable({
    c = c, c and c.buf or false,
    connect_timeout = DEFAULT_TIMEOUT, send_timeout = DEFAULT_TIMEOUT,
    read_timeout = DEFAULT_TIMEOUT, opts = opts, reused = 0,
    receive = m_receive, receiveany = m_receiveany, send = m_send,
  }, Cosocket)
end

-- co.tcp([options]) -> cosocket (options: max_input, max_line, tls_context).
function co.tcp(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #1 to 'tcp' (table expected, got %s)"):format(type(opts)), 2)
  end
  return new_cosocket(nil, opts)
end

function Cosocket:__tostring()
  local c = self.c
  if not c or c.closed then return "net.co.Socket (closed)" end
  return "net.co.Socket (" .. (c.key or "connected") .. ")"
end

local function ms_arg(v, n, fname)
  if v == nil then return nil end
  if type(v) ~= "number" or v < 0 then
    error(("bad argument #%d to '%s' (milliseconds expected, got %s)"):format(n, fname,
      type(v) == "number" and tostring(v) or type(v)), 3)
  end
  return v
end

-- settimeout(ms): connect, send and read alike; nil: never time out.
function Cosocket:settimeout(ms)
  ms = ms_arg(ms, 1, "settimeout")
  self.connect_timeout, self.send_timeout, self.read_timeout = ms, ms, ms
  return 1
end

function Cosocket:settimeouts(connect, send, read)
  self.connect_timeout = ms_arg(connect, 1, "settimeouts")
  self.send_timeout = ms_arg(send, 2, "settimeouts")
  self.read_timeout = ms_arg(read, 3, "settimeouts")
  return 1
end

-- Options that are ours, not TCPSocket's.
local own_options = { pool = true, pool_size = true, backlog = true,
                      max_input = true, max_line = true, tls_context = true }

local function net_options(opts)
  if opts == nil then return nil end
  local out
  for k, v in pairs(opts) do
    if not own_options[k] then
      out = out or {}
      out[k] = v
    end
  end
  return out
end

-- A number per TLS context (weak keys), for pool names.
local context_ids, context_count = setmetatable({}, { __mode = "k" }), 0
local function context_id(ctx)
  if ctx == true then return "default" end
  local id = context_ids[ctx]
  if not id then
    context_count = context_count + 1
    id = context_count
    context_ids[ctx] = id
  end
  return id
end

-- connect(host, port[, options]) -> 1 | nil, message
function Cosocket:connect(host, port, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #3 to 'connect' (table expected, got %s)"):format(type(opts)), 2)
  end
  if self.c then self:close() end
  -- A connection made with the tls option is pooled apart, per context and
  -- name checked: a plaintext one, or one verified otherwise, is never
  -- handed out where TLS was asked for.
  local tls = opts and opts.tls
  local key = opts and opts.pool
  if not key then
    key = tostring(host) .. ":" .. tostring(port)
    if tls then key = key .. " tls " .. context_id(tls) .. " " .. tostring(opts.servername or host) end
  end
  local list = pools[key]
  if list then
    while #list > 0 do
      local c = list[#list]
      unpool(c)
      if tls and not c.secured then  -- a named pool shared with plaintext
        c_close(c)
      elseif not c.closed then
        c.uses = c.uses + 1
        attach(self, c)
        self.reused = c.uses
        return 1
      end
    end
  end
  local th, token = prepare(2)
  local c = new_record(self.opts, opts)
  c.pool, c.key = key, key
  c.tls_context = opts and opts.tls_context
  c.secured = opts and opts.tls and true or false
  local sock = net.TCPSocket()
  c.sock = sock
  bind(c, sock, false)
  sock:connect(host, port, client_callbacks(c), net_options(opts))  -- raises for bad arguments
  c.connector, c.ctoken = th, token
  local r = suspend(th, token, self.connect_timeout)
  c.connector = nil
  if r == "connected" then
    attach(self, c)
    self.reused = 0
    return 1
  end
  sock:close()
  if r == "timeout" then return nil, "timeout" end
  return nil, c.err or "closed", c.code
end

-- The connection ended under a call: nil, message (and the partial data).
local function ended(self, c, partial)
  detach(self)
  if c.err then return nil, c.err, partial, c.code end
  return nil, "closed", partial
end

-- A non-timeout failure closes the connection.
local function failed(self, c, msg)
  detach(self)
  c_close(c)
  return nil, msg
end

local function consumed(c)
  if c.paused and c.buf:size() <= c.max_input then
    c.paused = false
    if not c.closed then c_resume(c) end
  end
end

-- A read's timeout: one timer per connection, armed for the earliest
-- deadline and left running across reads that end in time (a timer per read
-- would cost more than the read); when it fires before the current read's
-- deadline it is armed again. Cleared when the connection ends or is pooled.
local arm

local function read_timer_fired(c)
  c.rtimer = nil
  c.buf:timer(false)
  local _, _, deadline = c.buf:reader()
  if not deadline or arm(c, deadline) then return end
  wake_reader(c, "timeout")
end

function clear_read_timer(c)
  if c.rtimer then
    clearTimeout(c.rtimer)
    c.rtimer = nil
    c.buf:timer(false)
  end
end

-- Arms the read timer for deadline; false when it has passed already.
function arm(c, deadline)
  local ms = deadline - net_now()
  if ms <= 0 then return false end
  if c.rtimer then clearTimeout(c.rtimer) end
  c.rtimer, c.rtimer_at = setTimeout(read_timer_fired, ms, c), deadline
  c.buf:timer(deadline)
  return true
end

local function unpause(c)
  if c.paused and not c.closed then
    c.paused = false
    c_resume(c)
  end
end

-- Waits for more input (or the end). Returns "timeout" or nil. The same
-- wait for receive's lines and counts and for receiveany is in C (co.cc's
-- read_on), with the same fields.
local function wait_input(self, c, deadline)
  if deadline then
    -- A timer armed for this deadline or earlier stays: when it fires,
    -- read_timer_fired ends the read or arms it again for the rest.
    if not c.rtimer or c.rtimer_at > deadline then
      if not arm(c, deadline) then return "timeout" end
    end
  end
  if c.paused then unpause(c) end  -- the reader asks for more: read past the limit
  local th, token = prepare(4)
  local buf = c.buf
  buf:set_reader(th, token, deadline or false)
  -- Parked on the connection: the read resumes it from C with the data.
  local r = wait_data(buf, token)
  waiting[th] = nil
  buf:set_reader(false)
  if r == "timeout" then return r end
end

local function deadline_of(ms)
  return ms and net_now() + ms
end

local function read_count(self, c, n)
  local buf, deadline = c.buf, nil
  while true do
    local s = buf:take(n)
    if s then
      if c.paused then consumed(c) end
      return s
    end
    if c.closed then return ended(self, c, buf:all()) end
    deadline = deadline or deadline_of(self.read_timeout)
    if wait_input(self, c, deadline) then return nil, "timeout", buf:all() end
  end
end

local function read_all(self, c)
  local buf, deadline = c.buf, nil
  while not c.closed do
    deadline = deadline or deadline_of(self.read_timeout)
    if wait_input(self, c, deadline) then return nil, "timeout", buf:all() end
  end
  detach(self)
  if c.err then return nil, c.err, buf:all(), c.code end
  return buf:all()
end

-- Cosocket methods in C (co.cc): receive of a line or an integer count,
-- receiveany, send of a string or a small flat array. They call these
-- helpers for the rest, the helpers' own errors one level further out.
local helpers = {
  consumed = consumed, ended = ended, failed = failed, arm = arm, unpause = unpause,
}

-- receive([pattern]): "*l"/"l" (default) and integer counts are in C;
-- here "*a"/"a" and a count given as a string or a float.
function helpers.receive(self, pat)
  local c = self.c
  if not c then return nil, "closed" end
  if pat == "*a" or pat == "a" then return read_all(self, c) end
  local n = tonumber(pat)
  if n == nil or n < 0 or n ~= n // 1 then
    error(("bad argument #1 to 'receive' (invalid pattern %s)"):format(tostring(pat)), 3)
  end
  return read_count(self, c, n // 1)
end

-- receiveany on something that is not a cosocket.
function helpers.receiveany(self)
  error(("bad self to 'receiveany' (net.co.Socket expected, got %s)"):format(type(self)), 3)
end

-- receiveuntil(delimiter[, {inclusive = bool}]) -> iterator([size])
function Cosocket:receiveuntil(delim, opts)
  if type(delim) ~= "string" or delim == "" then
    error("bad argument #1 to 'receiveuntil' (non-empty string expected)", 2)
  end
  local inclusive = opts and opts.inclusive or false
  local part_done = false
  return function(size)
    local c = self.c
    if not c then return nil, "closed" end
    if size ~= nil and (math_type(size) ~= "integer" or size <= 0) then
      error("bad argument #1 to iterator (positive integer expected)", 2)
    end
    if size and part_done then
      part_done = false
      return nil
    end
    local buf, deadline = c.buf, nil
    c.nbuf = nil
    while true do
      local data, found = buf:upto(delim, inclusive, size)
      if data then
        if c.paused then consumed(c) end
        if size and found then
          if data == "" then return nil end
          part_done = true
        end
        return data
      end
      if c.closed then return ended(self, c, buf:all()) end
      deadline = deadline or deadline_of(self.read_timeout)
      if wait_input(self, c, deadline) then return nil, "timeout", buf:all() end
    end
  end
end

-- send() gave r: false (queued above the high-water mark: wait for the
-- queue to drain) or nil (failed: the connection is closed).
local function after_send(self, c, r, msg, code)
  if r == nil then
    detach(self)
    c_close(c)
    return nil, c.err or msg, code
  end
  local deadline = deadline_of(self.send_timeout)
  -- Above the high-water mark: wait for 'drain'.
  local th, token = prepare(3)
  c.writer, c.wtoken = th, token
  local res = suspend(th, token, deadline and deadline - net.now())
  c.writer = nil
  if res == "timeout" then return failed(self, c, "timeout") end
  if c.closed then
    detach(self)
    return nil, c.err or "closed", c.code
  end
  return true
end

-- Queues s, waiting for the queue to drain when it is above its high-water mark.
local function put(self, c, s)
  local r, msg, code = c_send(c, s)
  if r then return true end
  return after_send(self, c, r, msg, code)
end

local function put_string(self, c, s)
  local n = #s
  if n <= SEND_CHUNK then return put(self, c, s) end
  for i = 1, n, SEND_CHUNK do
    local ok, err, code = put(self, c, s:sub(i, i + SEND_CHUNK - 1))
    if not ok then return nil, err, code end
  end
  return true
end

-- send(data): a string or a (nested) array of strings and numbers -> bytes
-- sent. A string up to SEND_CHUNK and a small flat array (a protocol
-- command) are written in C (co.cc's co_send), which calls send_wait when
-- the queue is above its high-water mark, and this for the rest.
function helpers.send(self, data)
  local c = self.c
  if not c or c.closed then return nil, "closed" end
  local t = type(data)
  if t == "string" then
    local ok, err, code = put_string(self, c, data)
    if not ok then return nil, err, code end
    return #data
  end
  if t == "number" then return self:send(tostring(data)) end
  if t ~= "table" then
    error(("bad argument #1 to 'send' (string or table expected, got %s)"):format(t), 3)
  end
  if #data <= 32 then  -- a small flat array with floats, or over 4 KiB: one string
    local s = flat_concat(data)
    if s then return self:send(s) end
  end
  -- Small pieces are joined into batches; a big one goes on its own, so a
  -- table of large strings is never copied into one string.
  local parts, np, held, total = {}, 0, 0, 0
  local failure, fcode
  local function flush()
    if np == 0 then return true end
    local s = np == 1 and parts[1] or concat(parts, "", 1, np)
    np, held = 0, 0
    local ok, err, code = put_string(self, c, s)
    if not ok then failure, fcode = err, code end
    return ok
  end
  local function walk(tbl, depth)
    if depth > 100 then error("bad argument #1 to 'send' (table nested too deeply)", depth + 4) end
    for i = 1, #tbl do
      local v = tbl[i]
      local tv = type(v)
      if tv == "table" then
        if not walk(v, depth + 1) then return false end
      else
        if tv == "number" then
          v = tostring(v)
        elseif tv ~= "string" then
          error(("bad argument #1 to 'send' (non-string %s in the table)"):format(tv), depth + 4)
        end
        local len = #v
        total = total + len
        if len >= BATCH then
          if not flush() then return false end
          local ok, err, code = put_string(self, c, v)
          if not ok then failure, fcode = err, code; return false end
        else
          np = np + 1
          parts[np] = v
          held = held + len
          if held >= BATCH and not flush() then return false end
        end
      end
    end
    return true
  end
  if not walk(data, 0) or not flush() then return nil, failure, fcode end
  return total
end

-- The C send wrote n bytes and send() gave r (false: above the high-water
-- mark; nil: failed).
function helpers.send_wait(self, c, n, r, msg, code)
  local ok, err, code2 = after_send(self, c, r, msg, code)
  if not ok then return nil, err, code2 end
  return n
end

local hot = cparts.methods(helpers)
m_receive, m_receiveany, m_send = hot.receive, hot.receiveany, hot.send
Cosocket.receive, Cosocket.receiveany, Cosocket.send = m_receive, m_receiveany, m_send

-- close(): queued bytes are still sent, then the connection closes.
function Cosocket:close()
  local c = self.c
  if not c then return nil, "closed" end
  detach(self)
  if not c.closed then
    c_disconnect(c)
    c.closed = true
    c.buf:close()
    wake_all(c)
  end
  return 1
end

function Cosocket:shutdown()
  local c = self.c
  if not c or c.closed then return nil, "closed" end
  c_shutdown(c)
  return 1
end

---------------------------------------------------------------------------
-- TLS: sslhandshake in OpenResty's shape, over TCPSocket:starttls.

local Session = { __name = "net.co.SSLSession" }
Session.__index = Session
function Session:__tostring() return "net.co.SSLSession" end

-- The context of ssl_verify = false: made once per lua_State, when first
-- needed.
local insecure_context

local function session_of(self, c, reused)
  if reused == false then return true end
  local info = c.sock:tlsinfo()
  return setmetatable({ tlsinfo = info }, Session)
end

-- sslhandshake([reused_session[, server_name[, ssl_verify[, send_status_req[, options]]]]])
--   -> session | true (reused_session == false) | nil, message, code
-- ssl_verify: nil or true checks the certificate and the name (against
-- the cosocket's tls_context, else the system trust store); false: an
-- insecure context. server_name: the SNI sent and the name checked
-- (default: the host given to connect). options: { tls_context = ctx }.
-- reused_session and send_status_req are accepted and ignored (no session
-- resumption, no OCSP request).
function Cosocket:sslhandshake(reused, server_name, verify, _, opts)
  if not net.features.tls then error("lnet was built without TLS", 2) end
  if server_name ~= nil and type(server_name) ~= "string" then
    error(("bad argument #2 to 'sslhandshake' (string expected, got %s)"):format(type(server_name)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #5 to 'sslhandshake' (table expected, got %s)"):format(type(opts)), 2)
  end
  local c = self.c
  if not c or c.closed then return nil, "closed" end
  if c.id then return nil, "sslhandshake: not supported on a server's connection" end
  if c.secured then return session_of(self, c, reused) end  -- connect's tls, or a pooled one
  local ctx
  if verify == false then
    insecure_context = insecure_context or net.TLSContext { insecure = true }
    ctx = insecure_context
  else
    ctx = opts and opts.tls_context or c.tls_context or self.opts and self.opts.tls_context or true
  end
  -- The connect timeout bounds the handshake (our timer: "timeout").
  local ms = self.connect_timeout
  local sopts = { handshake_timeout = 0 }
  if server_name and server_name ~= "" then sopts.servername = server_name end
  local ok, err = pcall(c.sock.starttls, c.sock, ctx, sopts)
  if not ok then
    err = tostring(err)
    if err:find("bad argument", 1, true) then error(err, 2) end  -- not a TLSContext, a bad name
    return failed(self, c, (err:gsub("^.-starttls: ", "sslhandshake: ")))
  end
  -- A fast peer (TLS 1.3 on loopback) can answer while starttls writes the
  -- hello: 'secured' (or the failure) may have come before we wait.
  if c.secured then return session_of(self, c, reused) end
  if c.closed then
    detach(self)
    return nil, c.err or "closed", c.code
  end
  local th, token = prepare(2)
  c.connector, c.ctoken = th, token
  local r = suspend(th, token, ms)
  c.connector = nil
  if r == "secured" then return session_of(self, c, reused) end
  detach(self)
  c_close(c)
  if r == "timeout" then return nil, "timeout" end
  return nil, c.err or "closed", c.code
end

function Cosocket:getreusedtimes()
  if not self.c then return nil, "closed" end
  return self.reused
end

-- setkeepalive([idle_ms[, size]]): back to the pool of its host and port.
function Cosocket:setkeepalive(idle_ms, size)
  local c = self.c
  if not c or c.closed then detach(self); return nil, "closed" end
  if c.id then return self:close() end  -- a server's connection has no pool
  if c.buf:size() > 0 or c.buf:reader() or c.writer then
    self:close()
    return nil, "unread data in buffer"
  end
  idle_ms = ms_arg(idle_ms, 1, "setkeepalive") or DEFAULT_TIMEOUT
  size = size or 30
  detach(self)
  local list = pools[c.pool]
  if not list then list = {}; pools[c.pool] = list end
  if #list >= size then  -- full: the least recently used one goes
    local old = table.remove(list, 1)
    if old.idle_timer then clearTimeout(old.idle_timer); old.idle_timer = nil end
    old.pooled = false
    c_close(old)
  end
  list[#list + 1] = c
  c.pooled = true
  clear_read_timer(c)
  if c.paused then c.paused = false; c_resume(c) end  -- to see the peer close it
  if idle_ms > 0 then
    c.idle_timer = setTimeout(function()
      c.idle_timer = nil
      unpool(c)
      c_close(c)
    end, idle_ms)
  end
  return 1
end

-- co.closepool(): closes every idle pooled connection (they keep the loop
-- running until their idle timeout otherwise).
function co.closepool()
  local all = pools
  pools = {}
  for _, list in pairs(all) do
    for i = 1, #list do
      local c = list[i]
      if c.idle_timer then clearTimeout(c.idle_timer); c.idle_timer = nil end
      c.pooled = false
      c_close(c)
    end
  end
end

function Cosocket:peer()
  local c = self.c
  if not c then return nil, "closed" end
  if c.id then return c.srv:peer(c.id) end
  return c.sock:peer()
end

function Cosocket:sockname()
  local c = self.c
  if not c then return nil, "closed" end
  if c.id then return c.srv:sockname(c.id) end
  return c.sock:sockname()
end

-- LuaSocket's names.
Cosocket.getpeername = Cosocket.peer
Cosocket.getsockname = Cosocket.sockname

---------------------------------------------------------------------------
-- Servers

-- co.listen(host, port, handler[, options]) -> TCPServer: handler(sock) runs
-- in a coroutine per accepted connection; the socket is closed when it
-- returns or raises.
function co.listen(host, port, handler, opts)
  if type(handler) ~= "function" then
    error(("bad argument #3 to 'listen' (function expected, got %s)"):format(type(handler)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #4 to 'listen' (table expected, got %s)"):format(type(opts)), 2)
  end
  local srv = net.TCPServer()
  local conns = {}
  local callbacks = {
    connected = function(id)
      local c = new_record(opts)
      c.srv, c.id, c.open = srv, id, true
      bind(c, srv, id)
      conns[id] = c
      local sock = new_cosocket(c)
      local th = new_thread(handler, { on_exit = function() sock:close() end })
      first_resume(th, sock)
    end,
    data = function(id, d)
      local c = conns[id]
      if c then return on_data(c, d) end
    end,
    drain = function(id)
      local c = conns[id]
      if c then on_drain(c) end
    end,
    disconnected = function(id, reason, code)
      local c = conns[id]
      conns[id] = nil
      if c then on_closed(c, reason, code) end
    end,
  }
  srv:listen(host, port, callbacks, net_options(opts))
  return srv
end

return co
