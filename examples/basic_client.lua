-- Basic client: connects to www.google.com:80, sends an HTTP GET and prints
-- what comes back (the first 200 characters of each chunk).
--
-- Run:  lnet examples/basic_client.lua
--
-- It needs the internet. Without it, it prints the connect error and exits.
-- To try it locally: run `lnet examples/http_server.lua` in another terminal
-- and change "www.google.com", 80 below to "localhost", 8890.
--
-- The code below is the example from the TCP socket API document, unchanged.

local client = net.TCPSocket()

client:connect("www.google.com", 80, {
    connected = function()
        print("✓ Connected to server")
        
        -- Send HTTP request
        local request = "GET / HTTP/1.1\r\nHost: www.google.com\r\nConnection: close\r\n\r\n"
        client:send(request)
    end,
    
    data = function(data)
        print("Received:", #data, "bytes")
        print(data:sub(1, 200) .. "...")  -- Show first 200 chars
    end,
    
    disconnected = function()
        print("✓ Disconnected from server")
    end,
    
    error = function(error)
        print("✗ Connection error:", error)
    end
})
