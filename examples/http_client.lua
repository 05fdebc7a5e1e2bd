-- HTTP client: http_get(host, port, path) sends a GET request, collects the
-- response and prints its status code and the start of its body once the
-- server closes the connection. Fetches http://httpbin.org/json.
--
-- Run:  lnet examples/http_client.lua
--
-- It needs the internet. Without it, it prints "HTTP request failed: ..." and
-- exits. To try it locally: run `lnet examples/http_server.lua` in another
-- terminal and change the last line to  http_get("localhost", 8890, "/time")
--
-- The code below is the example from the TCP socket API document, unchanged.

local function http_get(host, port, path)
    local client = net.TCPSocket()
    local response_data = ""
    
    client:connect(host, port, {
        connected = function()
            local request = string.format(
                "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                path, host
            )
            client:send(request)
        end,
        
        data = function(data)
            response_data = response_data .. data
        end,
        
        disconnected = function()
            -- Parse HTTP response
            local status_line = response_data:match("HTTP/1%.1 (%d+)")
            local body = response_data:match("\r\n\r\n(.*)$")
            
            print("HTTP Status:", status_line)
            print("Response Body:", body and body:sub(1, 500) or "No body")
        end,
        
        error = function(error)
            print("HTTP request failed:", error)
        end
    })
end

-- Usage
http_get("httpbin.org", 80, "/json")
