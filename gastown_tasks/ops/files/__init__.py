"""A town's files, reached the way a hostile workspace demands: run files, logs, the lock, the data dir."""
