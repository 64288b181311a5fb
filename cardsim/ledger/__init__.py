"""Durable settlement state: the journal that lets `cardsim settle` survive a crash, and the
clearing-day ledger that makes a closed day final (docs/settlement.md, sections 6 and 7)."""
