"""The only code that touches sockets: listeners, byte streams and outbound buffers."""
