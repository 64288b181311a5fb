"""The settlement core: pure numpy, no simulation clock. See docs/settlement.md."""
