"""HTTP to one gateway: bounded sessions, the transport, how a request failed."""
