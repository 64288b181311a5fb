"""The city day: the only package that imports simpy. Demand is drawn with numpy; SimPy runs
where queues or stock matter (issuance windows, bike docks, hospital windows, uploads,
clearing workers)."""
