-- Connection management: a server that records when each client connected
-- and prints the session length when it leaves.
--
-- Run:  lnet examples/connection_management.lua
-- Talk: nc localhost 8891     (then Ctrl-C or Ctrl-D: the server prints the
--                             session line for that client)
-- Stop the server with Ctrl-C.
--
-- The original snippet uses `server` and `port` without defining them; the
-- preamble below defines them. The code after it is the example from the TCP
-- socket API document, unchanged.

-- ===== Preamble (not part of the original snippet) =====
local server = net.TCPServer()
local port = 8891
print("Connection management server on localhost:8891 (prints a line when a client leaves)")
-- ===== End of preamble: the original snippet follows, unchanged =====

-- Keep track of active connections
local active_clients = {}

server:listen("localhost", port, {
    connected = function(client_id)
        active_clients[client_id] = {
            connected_at = os.time(),
            bytes_sent = 0,
            bytes_received = 0
        }
    end,
    
    disconnected = function(client_id)
        local info = active_clients[client_id]
        if info then
            print(string.format("Client %s: session lasted %d seconds, %d bytes in, %d bytes out",
                  client_id, os.time() - info.connected_at, info.bytes_received, info.bytes_sent))
        end
        active_clients[client_id] = nil
    end
})
