"""The gateways the exporter serves: the registry, zeroconf discovery, which label each goes by."""
