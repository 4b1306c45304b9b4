"""What the engine's results say: the report, two reports compared, the capacity plan."""
