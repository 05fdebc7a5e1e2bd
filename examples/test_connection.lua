-- Self-test: starts an echo server on localhost:9999, connects a client to
-- it, exchanges one message, then disconnects and stops the server, so the
-- script ends by itself (exit status 0).
--
-- Run:  lnet examples/test_connection.lua
--
-- The code below is the example from the TCP socket API document, unchanged.

-- Start a simple echo server for testing
local server = net.TCPServer()
server:listen("localhost", 9999, {
    connected = function(client_id)
        print("Test client connected")
    end,
    
    data = function(client_id, data)
        server:send(client_id, "Echo: " .. data)
    end,
    
    started = function()
        print("✓ Test server ready")
        
        -- Connect a test client
        local client = net.TCPSocket()
        client:connect("localhost", 9999, {
            connected = function()
                print("✓ Test client connected")
                client:send("Hello, test!")
            end,
            
            data = function(data)
                print("✓ Received:", data)
                client:disconnect()
            end,
            
            disconnected = function()
                print("✓ Test completed")
                server:stop()
            end
        })
    end
})
