-- Throughput test server on localhost:10000: echoes every chunk it receives
-- and prints a line every 1000 received chunks. Stop it with Ctrl-C.
--
-- Run:  lnet examples/performance_test.lua
-- Talk: any client that sends many small messages and waits for each echo,
--       e.g.  for i in $(seq 3000); do echo "msg $i"; sleep 0.001; done | nc -q1 localhost 10000
--       (messages sent back to back may arrive together and count once)
--
-- The code below is the example from the TCP socket API document, unchanged.

local server = net.TCPServer()
local message_count = 0
local start_time = os.time()

-- High-throughput echo server
server:listen("localhost", 10000, {
    data = function(client_id, data)
        message_count = message_count + 1
        server:send(client_id, data)  -- Echo back
        
        if message_count % 1000 == 0 then
            local elapsed = os.time() - start_time
            print(string.format("Processed %d messages in %d seconds (%.1f msg/sec)", 
                  message_count, elapsed, message_count / elapsed))
        end
    end,
    
    started = function()
        print("✓ Performance test server ready on localhost:10000")
    end
})
