-- Echo client: connects to localhost:8888 and sends three messages, one per
-- second, printing every reply. The connection stays open: stop it with Ctrl-C.
--
-- Run:  lnet examples/echo_server.lua     (in one terminal)
--       lnet examples/echo_client.lua     (in another)
--
-- The code below is the example from the TCP socket API document, unchanged.

local client = net.TCPSocket()

client:connect("localhost", 8888, {
    connected = function()
        print("✓ Connected to echo server")
        
        -- Send test messages
        client:send("Hello, server!")
        
        setTimeout(function()
            client:send("This is message 2")
        end, 1000)
        
        setTimeout(function()
            client:send("Goodbye!")
        end, 2000)
    end,
    
    data = function(data)
        print("Echo received:", data)
    end,
    
    disconnected = function()
        print("✓ Disconnected from echo server")
    end,
    
    error = function(error)
        print("✗ Client error:", error)
    end
})
