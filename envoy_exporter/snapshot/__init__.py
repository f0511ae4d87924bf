"""Raw answers to one typed snapshot: pure parsers, the plan, the assembler, lifetime counters."""
