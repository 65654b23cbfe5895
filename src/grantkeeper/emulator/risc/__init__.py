"""Google's Cross-Account Protection (RISC) transmitter: the stream management API, Security
Event Tokens signed with the identity keys, and their delivery. Routes in :mod:`.transmitter`."""
