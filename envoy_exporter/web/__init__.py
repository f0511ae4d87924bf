"""The HTTP server and its pages: routes, landing and status pages, ``/sd``, TLS and basic auth."""
