-- Error handling: connects to localhost:8892 and, when that fails, retries
-- every 5 seconds, up to 3 attempts, then gives up and the script ends.
--
-- Run:  lnet examples/error_handling.lua
--       Nothing listens on 8892 by default: it prints three "Connection
--       failed" lines and "Max reconnection attempts reached" (about 10 s).
-- Talk: start  nc -l 8892  in another terminal first (or between attempts)
--       and the client connects ("Connected successfully"); it then stays
--       connected until nc quits.
--
-- The original snippet uses `host` and `port` without defining them; the
-- preamble below defines them. The code after it is the example from the TCP
-- socket API document, unchanged.

-- ===== Preamble (not part of the original snippet) =====
local host, port = "localhost", 8892
-- ===== End of preamble: the original snippet follows, unchanged =====

-- Robust error handling
local client = net.TCPSocket()
local reconnect_count = 0
local max_reconnects = 3

local function try_connect()
    client:connect(host, port, {
        connected = function()
            reconnect_count = 0  -- Reset on successful connect
            print("✓ Connected successfully")
        end,
        
        error = function(error)
            reconnect_count = reconnect_count + 1
            print(string.format("✗ Connection failed (attempt %d/%d): %s", 
                  reconnect_count, max_reconnects, error))
            
            if reconnect_count < max_reconnects then
                setTimeout(try_connect, 5000)  -- Retry after 5 seconds
            else
                print("✗ Max reconnection attempts reached")
            end
        end
    })
end

try_connect()
