//! Byte-stream transports for spiped: address parsing, TCP, UNIX sockets and stdio.
