-- Data framing: a client that splits the incoming byte stream into lines,
-- whatever the chunk boundaries, and hands each complete line to
-- handle_message.
--
-- Run:  lnet examples/data_framing.lua
--       The preamble starts a tiny line server on localhost:8893 that sends
--       three lines in uneven chunks (one line split across two chunks, two
--       lines sharing one) and closes; the client prints each whole line,
--       then the script ends.
-- Talk: to feed it your own lines instead, remove the line server from the
--       preamble, run  nc -l 8893  and type lines into it.
--
-- The original snippet uses `client`, `host`, `port` and `handle_message`
-- without defining them; the preamble below defines them. The code after it
-- is the example from the TCP socket API document, unchanged.

-- ===== Preamble (not part of the original snippet) =====
local host, port = "localhost", 8893
local function handle_message(line) print("line:", line) end
local client = net.TCPSocket()

-- A line server for the client to talk to: sends its chunks 50 ms apart,
-- then closes the connection and stops listening.
local line_server = net.TCPServer()
line_server:listen(host, port, {
    connected = function(client_id)
        local chunks = { "first li", "ne\nsecond line\nthi", "rd line\n" }
        for i, chunk in ipairs(chunks) do
            setTimeout(function()
                line_server:send(client_id, chunk)
                if i == #chunks then
                    line_server:disconnect(client_id)
                    line_server:stop()
                end
            end, 50 * i)
        end
    end,
    error = function(message)
        print("line server error:", message)
    end
})
-- ===== End of preamble: the original snippet follows, unchanged =====

-- Handle message boundaries in streaming data
local function create_line_handler()
    local buffer = ""
    
    return function(data)
        buffer = buffer .. data
        
        while true do
            local line, rest = buffer:match("([^\n]*)\n(.*)")
            if not line then break end
            
            buffer = rest
            
            -- Process complete line
            handle_message(line)
        end
    end
end

local line_handler = create_line_handler()

client:connect(host, port, {
    data = line_handler
})
