"""The town's one `dolt sql-server`: finding it, starting, checking and stopping it, keeping it running."""
