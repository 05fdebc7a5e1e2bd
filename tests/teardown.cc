// What happens when a program ends: the stock lua5.4 runs a script with the
// built net.so and closes its state (lua_close), as it does at every exit.
// Finalizers then run newest first, so lnet's own state goes before an
// object the program made before require "net"; and a script that set
// things up but never ran the loop hears about it.
#define BOOST_TEST_MODULE teardown
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>

#include "harness.hh"
#include "support.hh"

namespace {

using lnet_test::lua_env;
using lnet_test::Result;
using lnet_test::run;
using lnet_test::TempDir;

// Runs a Lua script with lua5.4 and the built module.
Result run_script(const std::string& text) {
  TempDir dir;
  std::string path = dir.write("script.lua", text);
  return run({"lua5.4", path}, lua_env(), "", std::chrono::seconds(30));
}

// A finalizer on an object made before require "net" runs after lnet's
// context is finalized. Every lnet function and method called from it must
// raise "net: the event loop is closed ..." (or, for a method of an object
// already finalized, "net: this net.TCPSocket was finalized ...") or do
// nothing; none may crash.
// The objects it uses were live (a listening server with a client, a
// connected socket, pending timers), never used, or stopped.
const char kFinalizerAfterClose[] = R"lua(
local check
early = setmetatable({}, { __gc = function() check() end })

local net = require "net"
local srv = net.TCPServer()
local accepted = false
srv:listen("127.0.0.1", 0, { connected = function() accepted = true end })
local _, port = srv:address()
local connected = false
local c = net.TCPSocket()
c:connect("127.0.0.1", port, { connected = function() connected = true end })
local idle = net.TCPSocket()
local stopped = net.TCPServer()
stopped:listen("127.0.0.1", 0, {})
stopped:stop()
local tm = net.setTimeout(function() end, 60000)
local iv = net.setInterval(function() end, 60000)
local guard = net.setTimeout(function() error("not connected within 10 s") end, 10000)
for _ = 1, 1000 do
  if accepted and connected then break end
  net.loop("once")
end
assert(accepted and connected, "set-up: connected")
net.clearTimeout(guard)

check = function()
  local checked, failures = 0, {}
  local function raises(name, f, ...)
    checked = checked + 1
    local ok, err = pcall(f, ...)
    if ok then
      failures[#failures + 1] = name .. ": did not raise"
    elseif type(err) ~= "string" or not (err:find("net: the event loop is closed", 1, true)
                                         or err:find("was finalized", 1, true)) then
      failures[#failures + 1] = name .. ": raised " .. tostring(err)
    end
  end
  local function quiet(name, f, ...)
    checked = checked + 1
    local r = table.pack(pcall(f, ...))
    if not r[1] then
      failures[#failures + 1] = name .. ": raised " .. tostring(r[2])
    elseif r.n > 1 then
      failures[#failures + 1] = name .. ": returned " .. tostring(r[2])
    end
  end
  raises("net.loop()", net.loop)
  raises("net.loop('once')", net.loop, "once")
  raises("net.loop('nowait')", net.loop, "nowait")
  raises("setTimeout", net.setTimeout, function() end, 10)
  raises("setInterval", net.setInterval, function() end, 10)
  raises("TCPSocket()", net.TCPSocket)
  raises("TCPServer()", net.TCPServer)
  raises("connect on a connected socket", c.connect, c, "127.0.0.1", port, {})
  raises("connect on a new socket", idle.connect, idle, "127.0.0.1", port, {})
  raises("listen on a stopped server", stopped.listen, stopped, "127.0.0.1", 0, {})
  raises("listen on a listening server", srv.listen, srv, "127.0.0.1", 0, {})
  raises("client send", c.send, c, "x")
  raises("server send", srv.send, srv, 1, "x")
  raises("client peer", c.peer, c)
  raises("client sockname", c.sockname, c)
  raises("client stats", c.stats, c)
  raises("server address", srv.address, srv)
  raises("server clients", srv.clients, srv)
  raises("server peer", srv.peer, srv, 1)
  raises("server sockname", srv.sockname, srv, 1)
  raises("server stats", srv.stats, srv)
  raises("server stats(id)", srv.stats, srv, 1)
  quiet("client pause", c.pause, c)
  quiet("client resume", c.resume, c)
  quiet("client shutdown", c.shutdown, c)
  quiet("client disconnect", c.disconnect, c)
  quiet("client close", c.close, c)
  quiet("new socket close", idle.close, idle)
  quiet("client <close>", function() local x <close> = c end)
  quiet("server pause(id)", srv.pause, srv, 1)
  quiet("server resume(id)", srv.resume, srv, 1)
  quiet("server shutdown(id)", srv.shutdown, srv, 1)
  quiet("server disconnect(id)", srv.disconnect, srv, 1)
  quiet("server close(id)", srv.close, srv, 1)
  quiet("server stop", srv.stop, srv)
  quiet("server <close>", function() local x <close> = srv end)
  quiet("clearTimeout", net.clearTimeout, tm)
  quiet("clearInterval", net.clearInterval, iv)
  quiet("timer:clear()", tm.clear, tm)
  quiet("net.stop", net.stop)
  checked = checked + 1
  if type(net.now()) ~= "number" then failures[#failures + 1] = "net.now" end
  checked = checked + 1
  if not tostring(c):find("^net%.TCPSocket") or not tostring(srv):find("^net%.TCPServer") then
    failures[#failures + 1] = "tostring: " .. tostring(c) .. ", " .. tostring(srv)
  end
  print(("checked %d calls"):format(checked))
  for _, f in ipairs(failures) do print("FAIL " .. f) end
end
)lua";

}  // namespace

BOOST_AUTO_TEST_CASE(finalizer_after_close, *boost::unit_test::timeout(60)) {
  Result r = run_script(kFinalizerAfterClose);
  BOOST_CHECK_MESSAGE(r.status == 0, r.text);
  BOOST_CHECK_MESSAGE(r.out == "checked 42 calls\n", r.text);
  BOOST_CHECK_MESSAGE(r.err.empty(), r.text);
}

// An object made after require "net" but before the objects its finalizer
// uses is finalized after their own __gc and before the context: the loop
// is already closing (it refuses as above) and each finalized object is
// inert (tostring says so; closing calls do nothing; the rest raise), so
// nothing is opened again with nothing left to release it, and the exit
// never waits.
namespace {

const char kFinalizerDuringClose[] = R"lua(
local net = require "net"
local check
mid = setmetatable({}, { __gc = function() check() end })
local srv = net.TCPServer()
local accepted = false
srv:listen("127.0.0.1", 0, { connected = function() accepted = true end })
local _, port = srv:address()
local connected = false
local c = net.TCPSocket()
c:connect("127.0.0.1", port, { connected = function() connected = true end })
local idle = net.TCPSocket()
local tm = net.setTimeout(function() end, 60000)
local guard = net.setTimeout(function() error("not connected within 10 s") end, 10000)
for _ = 1, 1000 do
  if accepted and connected then break end
  net.loop("once")
end
assert(accepted and connected, "set-up: connected")
net.clearTimeout(guard)

check = function()
  local checked, failures = 0, {}
  local function raises(name, f, ...)
    checked = checked + 1
    local ok, err = pcall(f, ...)
    if ok then
      failures[#failures + 1] = name .. ": did not raise"
    elseif type(err) ~= "string" or not (err:find("net: the event loop is closed", 1, true)
                                         or err:find("was finalized", 1, true)) then
      failures[#failures + 1] = name .. ": raised " .. tostring(err)
    end
  end
  local function quiet(name, f, ...)
    checked = checked + 1
    local r = table.pack(pcall(f, ...))
    if not r[1] then
      failures[#failures + 1] = name .. ": raised " .. tostring(r[2])
    elseif r.n > 1 then
      failures[#failures + 1] = name .. ": returned " .. tostring(r[2])
    end
  end
  raises("net.loop()", net.loop)
  raises("net.loop('nowait')", net.loop, "nowait")
  raises("setTimeout", net.setTimeout, function() end, 0)
  raises("TCPSocket()", net.TCPSocket)
  raises("listen on a finalized server", function() return srv:listen("127.0.0.1", 0, {}) end)
  raises("connect on a finalized socket", function() return c:connect("127.0.0.1", port, {}) end)
  raises("connect on a finalized idle socket",
    function() return idle:connect("127.0.0.1", port, {}) end)
  raises("send", function() return c:send("x") end)
  raises("server send", function() return srv:send(1, "x") end)
  raises("server clients", function() return srv:clients() end)
  quiet("close", function() c:close() end)
  quiet("stop", function() srv:stop() end)
  quiet("disconnect(id)", function() srv:disconnect(1) end)
  quiet("timer:clear()", function() tm:clear() end)
  quiet("net.stop", net.stop)
  checked = checked + 1
  if tostring(c) ~= "net.TCPSocket (finalized)" or tostring(srv) ~= "net.TCPServer (finalized)" then
    failures[#failures + 1] = "tostring: " .. tostring(c) .. ", " .. tostring(srv)
  end
  print(("checked %d calls"):format(checked))
  for _, f in ipairs(failures) do print("FAIL " .. f) end
end
)lua";

}  // namespace

BOOST_AUTO_TEST_CASE(finalizer_during_close, *boost::unit_test::timeout(60)) {
  Result r = run_script(kFinalizerDuringClose);
  BOOST_CHECK_MESSAGE(r.status == 0, r.text);
  BOOST_CHECK_MESSAGE(r.out == "checked 16 calls\n", r.text);
  BOOST_CHECK_MESSAGE(r.err.empty(), r.text);
}

// A script that sets up servers, sockets or timers and ends without running
// the loop says so in one line on stderr when its state closes; one that ran
// the loop, or left nothing active, says nothing.
namespace {

const char kServerTwoSockets[] = R"lua(
local net = require "net"
local srv = net.TCPServer()
srv:listen("127.0.0.1", 0, {})
local _, port = srv:address()
local a, b = net.TCPSocket(), net.TCPSocket()
a:connect("127.0.0.1", port, {})
b:connect("127.0.0.1", port, {})
print("set up")
)lua";

const char kOneTimer[] = R"lua(
local net = require "net"
net.setTimeout(function() print("fired") end, 10)
)lua";

const char kLoopRan[] = R"lua(
local net = require "net"
local srv = net.TCPServer()
srv:listen("127.0.0.1", 0, {})
net.setTimeout(function() end, 60000)
net.loop("nowait")
)lua";

const char kNothingActive[] = R"lua(
local net = require "net"
local srv = net.TCPServer()
srv:listen("127.0.0.1", 0, {})
srv:stop()
local c = net.TCPSocket()
c:connect("127.0.0.1", 9, {})
c:close()
net.clearTimeout(net.setTimeout(function() end, 10))
local idle = net.TCPSocket()
)lua";

}  // namespace

BOOST_AUTO_TEST_CASE(never_run_line, *boost::unit_test::timeout(60)) {
  Result r = run_script(kServerTwoSockets);
  BOOST_CHECK_MESSAGE(r.status == 0 && r.out == "set up\n", r.text);
  BOOST_CHECK_MESSAGE(r.err == "lnet: 1 server, 2 sockets were never run: call net.loop()\n", r.text);

  r = run_script(kOneTimer);
  BOOST_CHECK_MESSAGE(r.status == 0 && r.out.empty(), r.text);
  BOOST_CHECK_MESSAGE(r.err == "lnet: 1 timer was never run: call net.loop()\n", r.text);
}

BOOST_AUTO_TEST_CASE(no_line_when_the_loop_ran_or_nothing_is_active, *boost::unit_test::timeout(60)) {
  Result r = run_script(kLoopRan);
  BOOST_CHECK_MESSAGE(r.status == 0 && r.out.empty() && r.err.empty(), r.text);

  r = run_script(kNothingActive);
  BOOST_CHECK_MESSAGE(r.status == 0 && r.out.empty() && r.err.empty(), r.text);
}
