local net = require "net"
assert(type(net.loop) == "function")
assert(net == package.loaded.net)
assert(rawget(_G, "net") == nil, "require must not set a global")
