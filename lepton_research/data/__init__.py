"""Data sources, task streams and fetch commands (`python -m lepton_research.data fetch mnist`)."""
