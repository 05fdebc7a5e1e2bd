-- Echo server on localhost:8888: greets each client, then sends back every
-- chunk it receives prefixed with "Echo: ". Stop it with Ctrl-C.
--
-- Run:  lnet examples/echo_server.lua
-- Talk: nc localhost 8888            (type lines; Ctrl-D or Ctrl-C to leave)
--       printf 'hello\n' | nc -q1 localhost 8888
--       lnet examples/echo_client.lua
--
-- The code below is the example from the TCP socket API document, unchanged.

local server = net.TCPServer()

server:listen("localhost", 8888, {
    connected = function(client_id)
        print("✓ Client connected:", client_id)
        server:send(client_id, "Welcome to echo server!\n")
    end,
    
    data = function(client_id, data)
        print(string.format("Client %s sent: %s", client_id, data:gsub("\n", "\\n")))
        
        -- Echo the data back
        server:send(client_id, "Echo: " .. data)
    end,
    
    disconnected = function(client_id)
        print("✓ Client disconnected:", client_id)
    end,
    
    started = function()
        print("✓ TCP server listening on localhost:8888")
    end,
    
    error = function(error)
        print("✗ Server error:", error)
    end
})
