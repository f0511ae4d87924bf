"""Configuration: ``exporter.yml`` read within bounds, validated into ``Settings``, checked offline."""
